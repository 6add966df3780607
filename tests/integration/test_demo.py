"""The Quickstart demo (scripts/demo.sh, after setup) on a lab of its own: it shows what remediation would change,
upgrades the package host and the container that start below 1.5.8 with their seeded DICOM data kept, never prints
the demo user's password, finishes within the time the README promises, and a second run changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from orthanc_harden.lab import state
from tests.conftest import ROOT, run_cli, unavailable

pytestmark = pytest.mark.lab

LAB = os.environ.get("OH_DEMO_TEST_LAB", "pytest-demo")
PORT_BASE = int(os.environ.get("OH_DEMO_TEST_PORT_BASE", "17200"))


def _demo(tmp_path) -> tuple[int, str, float]:
    env = {**os.environ, "ORTHANC_HARDEN_LAB": LAB, "ORTHANC_HARDEN_DEMO_PORT_BASE": str(PORT_BASE),
           "ORTHANC_HARDEN_DEMO_SETUP": "0", "ORTHANC_HARDEN_DEMO_OUT": str(tmp_path)}
    env.pop("ORTHANC_HARDEN_LAB_USERS_REF", None)
    started = time.monotonic()
    proc = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


@pytest.fixture(scope="module")
def clean_lab():
    run_cli("lab", "down", "--lab", LAB)
    yield
    run_cli("lab", "down", "--lab", LAB)


def test_the_demo_upgrades_its_old_hosts_keeps_their_data_and_changes_nothing_the_second_time(clean_lab, tmp_path):
    code, out, seconds = _demo(tmp_path)
    if code != 0 and f"lab {LAB!r} is up" not in out:
        unavailable(f"the demo's lab did not start: {out[-300:]}")
    assert code == 0, out[-3000:]
    password = next(iter(json.loads((state.lab_dir(LAB) / "demo-users.json").read_text()).values()))
    assert password not in out
    print(f"the demo took {seconds:.0f} s")  # a figure, not a target: targets live in bench/ (shared machines)
    # The dry run shows the upgrade to come, the run makes it, the end shows the data kept.
    assert "package orthanc: 1.5.7+lab-1 -> 1.10.1" in out
    assert "upgrade: orthanc upgraded to 1.10.1" in out
    assert "/jodogne/orthanc:1.5.7 (Orthanc 1.5.7) -> " in out
    for line in ("lab-pkg-3 (package, below 1.5.8 before the run): Orthanc 1.10.1 now; "
                 "3 of 3 seeded DICOM instances still there",
                 "lab-docker-1 (container, below 1.5.8 before the run): Orthanc 1.10.1 now; "
                 "3 of 3 seeded DICOM instances still there"):
        assert line in out
    report = json.loads((tmp_path / "lab-remediate.json").read_text())
    assert {row["status"] for row in report["hosts"]} == {"changed"}

    started = _started()
    code, out, _ = _demo(tmp_path)
    assert code == 0, out[-3000:]
    assert _started() == started, "the second run restarted an Orthanc"
    report = json.loads((tmp_path / "lab-remediate.json").read_text())
    assert {row["status"] for row in report["hosts"]} == {"compliant"}
    assert all(not row["changes"] for row in report["hosts"])
    assert "what would change (nothing was changed)" not in out and "4 compliant; exit status 0" in out


def _started() -> dict[str, str]:
    """When each Orthanc of the lab last started: the containers' start, the package hosts' Orthanc main PID."""
    import docker

    client = docker.from_env()
    data = state.load(state.lab_dir(LAB))
    found = {}
    for entry in data["hosts"]:
        pid = client.containers.get(entry["container"]).exec_run(["systemctl", "show", "-p", "MainPID", "--value",
                                                                   "orthanc"]).output.decode().strip()
        found[entry["name"]] = pid
    for entry in data["containers"]:
        found[entry["name"]] = client.api.inspect_container(entry["container"])["State"]["StartedAt"]
    return found
