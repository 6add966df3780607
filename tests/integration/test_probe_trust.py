"""Issue #18.1: the probe runs as root on every host; it must never execute what an unprivileged user controls.

Runs the real probe program as root on this machine (the lab's hosts are containers, whose processes the probe
leaves to the Docker API) beside a process an unprivileged user started under the name Orthanc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from orthanc_harden.remote import program
from tests.conftest import ROOT, unavailable

PLANTED = """#!/bin/sh
touch {marker}
echo "Orthanc 9.9.9"
"""


@pytest.fixture()
def planted(tmp_path_factory):
    """A user-writable script named Orthanc and a process of user nobody whose argv[0] points at it."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        unavailable("needs root and setpriv (util-linux) to start a process as another user")
    base = tmp_path_factory.mktemp("probe-trust")
    home = base / "home"
    home.mkdir()
    marker = base / "marker"
    script = home / "Orthanc"
    script.write_text(PLANTED.format(marker=marker))
    script.chmod(0o755)
    shutil.chown(home, "nobody")
    shutil.chown(script, "nobody")
    base.chmod(0o755)
    proc = subprocess.Popen(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                             "bash", "-c", f"exec -a {script} sleep 300"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # bounded: until the kernel shows the new argv[0]
        try:
            if open(f"/proc/{proc.pid}/cmdline", "rb").read().startswith(str(script).encode()):
                break
        except OSError:
            pass
        time.sleep(0.1)
    yield {"pid": proc.pid, "script": script, "marker": marker}
    proc.kill()
    proc.wait(timeout=10)


def _probe() -> dict:
    out = subprocess.run([sys.executable, "-c", program("probe")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))


def test_probe_never_runs_a_user_controlled_binary(planted):
    state = _probe()
    assert not planted["marker"].exists(), "the probe executed a script an unprivileged user controls"
    assert str(planted["script"]) not in state["binaries"]
    row = next(u for u in state["untrusted"] if u["pid"] == planted["pid"])
    assert row["owner"] == "nobody" and row["path"] == os.path.realpath(shutil.which("sleep"))
    assert "not a root-owned Orthanc" in row["reason"]


def test_audit_reports_why_and_executes_nothing(planted):
    proc = subprocess.run([sys.executable, "-m", "orthanc_harden.cli", "audit", "@local", "--json", "-"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert not planted["marker"].exists(), "the audit executed a script an unprivileged user controls"
    report = json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])  # the table comes first on stdout
    rows = [r for r in report["instances"] if r["instance"] == f"pid {planted['pid']}"]
    assert rows, proc.stdout[-2000:]
    found = {f["id"]: f for f in rows[0]["findings"]}
    assert "ORTH-008" in found and "nobody" in found["ORTH-008"]["detail"], found
    assert set(found) == {"ORTH-008"}, "an unread configuration must not be judged from Orthanc's defaults"
    assert proc.returncode == 1, proc.stderr[-500:]
    # remediate reads every host's state with the same probe before its plan (--dry: this machine is not changed)
    dry = subprocess.run([sys.executable, "-m", "orthanc_harden.cli", "remediate", "@local", "--dry"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert "Traceback" not in dry.stdout + dry.stderr
    assert not planted["marker"].exists(), "remediate executed a script an unprivileged user controls"
