"""The probe's root-only cache (issue #24): a compliant host does not start the Orthanc binary, list the package's
files or ask ufw on every run, and nothing but a root:root 0600 file in a root-owned directory nobody else may write
is ever believed. Runs the real probe functions on this machine against a real script named Orthanc."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from orthanc_harden.remote import load
from tests.conftest import unavailable

SCRIPT = """#!/bin/sh
echo run >> {calls}
echo "$0 {version}"
"""


@pytest.fixture()
def place():
    """A root-owned directory chain (the probe refuses anything under a world-writable /tmp) with a cache
    directory and an Orthanc script that counts its executions."""
    if os.geteuid() != 0:
        unavailable("the probe's cache is root's: these specs chown files and run as root")
    base = Path(tempfile.mkdtemp(prefix="orthanc-harden-cache-spec-", dir="/var/lib"))
    base.chmod(0o755)
    (base / "state").mkdir(mode=0o700)
    binary = base / "Orthanc"
    calls = base / "calls"
    _install(binary, calls, "1.10.1")
    yield {"base": base, "cache": base / "state" / "probe-cache.json", "binary": str(binary), "calls": calls}
    shutil.rmtree(base)


def _install(binary: Path, calls: Path, version: str) -> None:
    """Replaced the way a package manager does: a new file renamed over the old one."""
    new = binary.with_name(".new")
    new.write_text(SCRIPT.format(calls=calls, version=version))
    new.chmod(0o755)
    os.replace(new, binary)


def _runs(place) -> int:
    return len(place["calls"].read_text().splitlines()) if place["calls"].exists() else 0


def _version(place, probe=None) -> str | None:
    probe = probe or load("probe")
    cache = probe["ProbeCache"](str(place["cache"]))
    version = probe["orthanc_version"](place["binary"], cache)
    cache.save()
    return version


def test_second_probe_does_not_execute_orthanc(place):
    assert _version(place) == "1.10.1"
    assert _runs(place) == 1
    info = place["cache"].stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, 0, 0o600)
    assert _version(place) == "1.10.1"
    assert _runs(place) == 1, "the cached version was not used"


def test_a_binary_replaced_in_place_is_asked_again(place):
    assert _version(place) == "1.10.1"
    _install(Path(place["binary"]), place["calls"], "1.10.2")
    assert _version(place) == "1.10.2"
    assert _runs(place) == 2


def test_a_binary_rewritten_with_the_same_inode_is_asked_again(place):
    assert _version(place) == "1.10.1"
    path = Path(place["binary"])
    path.write_text(SCRIPT.format(calls=place["calls"], version="1.5.7"))  # same inode, same size
    assert _version(place) == "1.5.7"
    assert _runs(place) == 2


@pytest.mark.parametrize("spoil", ["mode 0644", "owner nobody", "group-writable directory", "symlink", "not JSON"])
def test_a_cache_file_that_is_not_roots_alone_is_ignored(place, spoil):
    assert _version(place) == "1.10.1"
    cache = place["cache"]
    # A planted lie: if it were believed, the probe would report 9.9.9 without running the binary.
    text = cache.read_text().replace("1.10.1", "9.9.9")
    assert "9.9.9" in text
    cache.write_text(text)
    if spoil == "mode 0644":
        cache.chmod(0o644)
    elif spoil == "owner nobody":
        shutil.chown(cache, "nobody")
    elif spoil == "group-writable directory":
        cache.parent.chmod(0o770)
    elif spoil == "symlink":
        target = place["base"] / "elsewhere.json"
        os.replace(cache, target)
        cache.symlink_to(target)
    else:
        cache.write_text("{not json")
    assert _version(place) == "1.10.1"
    assert _runs(place) == 2


def test_a_trusted_cache_is_believed(place):
    """The counterpart of the spoiled files: the same planted value in a root:root 0600 file is used, which is
    what makes the ownership checks above the only thing keeping a lie out."""
    assert _version(place) == "1.10.1"
    cache = place["cache"]
    cache.write_text(cache.read_text().replace("1.10.1", "9.9.9"))
    assert _version(place) == "9.9.9"
    assert _runs(place) == 1


def test_not_root_neither_reads_nor_writes(place):
    probe = load("probe")
    probe["os"] = type("NotRoot", (), {"__getattr__": lambda self, name: getattr(os, name),
                                      "geteuid": staticmethod(lambda: 1000)})()
    assert _version(place, probe) == "1.10.1"
    assert not place["cache"].exists()
    assert _version(place) == "1.10.1"  # as root: writes
    assert _version(place, probe) == "1.10.1"
    assert _runs(place) == 3, "a non-root probe must not use the cache"


def test_a_failure_is_not_recorded(place):
    Path(place["binary"]).write_text("#!/bin/sh\nexit 3\n")
    assert _version(place) is None
    assert not place["cache"].exists() or "versions" not in json.loads(place["cache"].read_text())


def test_nothing_is_written_when_nothing_changed(place):
    _version(place)
    before = place["cache"].stat()
    _version(place)
    after = place["cache"].stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_only_entries_of_this_run_are_kept(place):
    _version(place)
    _install(Path(place["binary"]), place["calls"], "1.10.2")
    _version(place)
    assert len(json.loads(place["cache"].read_text())["versions"]) == 1


def test_held_packages_come_from_dpkg_status(monkeypatch):
    probe = load("probe")
    status = "orthanc\t1.10.1\thi \northanc-dicomweb\t1.13\tii \northanc-wsi\t\thn \n"
    calls = []

    def run(argv, timeout=15, stdin=None):
        calls.append(argv[0])
        return (0, status, "") if argv[0] == "dpkg-query" else (1, "", "")

    probe["run"] = run
    probe["shutil"] = type("Which", (), {"which": staticmethod(lambda name: "/usr/bin/" + name)})
    info = probe["package_info"]()
    assert info["held"] == ["orthanc", "orthanc-wsi"]
    assert info["version"] == "1.10.1"
    assert info["plugins"] == {"orthanc-dicomweb": "1.13"}
    assert calls == ["dpkg-query"], "apt-mark is no longer started"


def test_ufw_status_is_asked_again_when_a_rules_file_changes(place, monkeypatch):
    probe = load("probe")
    rules = place["base"] / "user.rules"
    rules.write_text("one\n")
    probe["UFW_FILES"] = (str(rules),)
    asked = []

    def run(argv, timeout=15, stdin=None):
        asked.append(argv)
        return 0, "Status: active\n%s" % rules.read_text(), ""

    probe["run"] = run

    def status():
        cache = probe["ProbeCache"](str(place["cache"]))
        out = probe["ufw_status"](cache)
        cache.save()
        return out[1]

    assert status() == "Status: active\none\n"
    assert status() == "Status: active\none\n"
    assert len(asked) == 1
    rules.write_text("two\n")
    assert status() == "Status: active\ntwo\n"
    assert len(asked) == 2
