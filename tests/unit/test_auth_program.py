"""The remote auth program (check/apply/restore), run exactly as hosts run it, on temporary config trees."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import json5
import pytest

from orthanc_harden.remote import program

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CREDS = '{\n  // users\n  "RegisteredUsers" : {\n    "legacy" : "old-pw",\n    "orthanc" : "orthanc"\n  }\n}\n'
MAIN = '{\n  "Name" : "pacs", // name\n  "RemoteAccessAllowed" : true,\n  "AuthenticationEnabled" : false\n}\n'


def _run(mode: str, request: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", program("auth"), mode], input=json.dumps(request),
                          capture_output=True, text=True, timeout=60, check=False)
    return json.loads(proc.stdout)


@pytest.fixture
def tree(tmp_path) -> Path:
    (tmp_path / "orthanc.json").write_text(MAIN)
    (tmp_path / "credentials.json").write_text(CREDS)
    os.chmod(tmp_path / "credentials.json", 0o644)  # too open: the apply tightens it
    return tmp_path


def _request(tree: Path, **extra) -> dict:
    return {"config_path": str(tree), "users": {"radiology": "New-pw"}, "users_mode": "exact", **extra}


def test_exact_mode_replaces_users_and_tightens_the_file(tree):
    plan = _run("check", _request(tree))
    assert plan["changed"] and plan["users_added"] == ["radiology"]
    assert plan["users_removed"] == ["legacy", "orthanc"]
    applied = _run("apply", _request(tree))
    assert applied["users_file_mode"] == "0640"
    assert json5.loads((tree / "credentials.json").read_text())["RegisteredUsers"] == {"radiology": "New-pw"}
    assert json5.loads((tree / "orthanc.json").read_text())["AuthenticationEnabled"] is True
    assert stat.S_IMODE((tree / "credentials.json").stat().st_mode) == 0o640
    backup = tree / "credentials.json.orthanc-harden-backup"
    assert backup.read_text() == CREDS and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert "// users" in (tree / "credentials.json").read_text() and "// name" in (tree / "orthanc.json").read_text()
    assert _run("check", _request(tree))["changed"] is False


def test_merge_mode_keeps_other_users(tree):
    _run("apply", _request(tree, users_mode="merge", users={"radiology": "New-pw", "legacy": "rotated"}))
    users = json5.loads((tree / "credentials.json").read_text())["RegisteredUsers"]
    assert users == {"legacy": "rotated", "orthanc": "orthanc", "radiology": "New-pw"}


def test_single_file_config_and_remote_access_off(tmp_path):
    single = tmp_path / "orthanc.json"
    single.write_text(MAIN)
    _run("apply", {"config_path": str(single), "users": {"a": "b"}, "disable_remote_access": True})
    config = json5.loads(single.read_text())
    assert (config["RegisteredUsers"], config["AuthenticationEnabled"], config["RemoteAccessAllowed"]) == (
        {"a": "b"}, True, False)


def test_restore_puts_the_backups_back(tree):
    applied = _run("apply", _request(tree))
    assert _run("restore", {"files": applied["files"]}) == {"restored": applied["files"]}
    assert (tree / "credentials.json").read_text() == CREDS and (tree / "orthanc.json").read_text() == MAIN


def test_refusals_change_nothing(tree):
    (tree / "dup.json").write_text('{ "Name" : "again" }')
    assert "key Name is defined in" in _run("apply", _request(tree))["error"]
    (tree / "dup.json").unlink()
    assert _run("check", {**_request(tree), "config_path": str(tree / "missing")})["error"].endswith("does not exist")
    assert (tree / "credentials.json").read_text() == CREDS and not list(tree.glob("*backup"))
    output = json.dumps(_run("check", _request(tree)))
    assert "New-pw" not in output and "old-pw" not in output
