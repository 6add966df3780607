"""Issue #18.3: `--json FILE` reports list exposed hosts: written owner-only, atomically, never through a link."""

from __future__ import annotations

import json
import os

import pytest

from orthanc_harden import cli


def test_report_is_owner_only_whatever_the_umask(tmp_path):
    destination = tmp_path / "report.json"
    old = os.umask(0o022)
    try:
        cli._write_json({"hosts": []}, str(destination))
    finally:
        os.umask(old)
    assert destination.stat().st_mode & 0o777 == 0o600
    assert json.loads(destination.read_text()) == {"hosts": []}


def test_report_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    destination = tmp_path / "report.json"
    destination.symlink_to(victim)
    cli._write_json({"hosts": []}, str(destination))
    assert victim.read_text() == "keep me"
    assert not destination.is_symlink() and destination.stat().st_mode & 0o777 == 0o600


def test_report_into_a_missing_directory_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli._write_json({"hosts": []}, str(tmp_path / "nowhere" / "report.json"))
    assert "cannot write the report" in str(exit_info.value) and "\n" not in str(exit_info.value)
