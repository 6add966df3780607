"""A deploy of an operator's own that imports ``upgrade.package(restart=False)`` alone into its pyinfra CLI run, on
a lab host with a package below 1.5.8: no authentication operation follows to take the restart, so the upgrade
restarts Orthanc itself, once, and says so. Orthanc is never left running the binary the upgrade replaced."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orthanc_harden.lab import state as lab_state
from tests.conftest import ROOT, run_cli, unavailable
from tests.integration.conftest import SUBSET_INVENTORY, run_on, ssh_to

pytestmark = pytest.mark.lab

LAB = os.environ.get("OH_EMBED_TEST_LAB", "h22a-embed")
PORT_BASE = int(os.environ.get("OH_EMBED_TEST_PORT_BASE", "4200"))
DEPLOY = """
from orthanc_harden.operations import upgrade

upgrade.package(name="Orthanc at the floor, restart left to the caller", restart=False)
"""
# When the running Orthanc started and when its binary last changed (seconds since the epoch), and how many times
# systemd started it.
STARTED = ("date -d \"$(systemctl show -p ExecMainStartTimestamp --value orthanc)\" +%s; "
           "stat -c %Z /usr/sbin/Orthanc; journalctl --no-pager -o cat -u orthanc | grep -c '^Started orthanc'")


@pytest.fixture(scope="module")
def old_host(tmp_path_factory):
    run_cli("lab", "down", "--lab", LAB)  # a run that was interrupted leaves an upgraded host
    proc = run_cli("lab", "up", "--lab", LAB, "--hosts", "1", "--containers", "0", "--old-hosts", "1",
                   "--port-base", str(PORT_BASE))
    if proc.returncode != 0:
        unavailable(f"lab {LAB} did not start: {proc.stderr[-300:]}")
    data = lab_state.load(lab_state.lab_dir(LAB))
    work = tmp_path_factory.mktemp("embedded")
    (work / "inventory.py").write_text(SUBSET_INVENTORY)
    (work / "deploy.py").write_text(DEPLOY)
    data["work"] = work
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _pyinfra(lab: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "ORTHANC_HARDEN_LAB": LAB, "OH_TEST_HOSTS": lab["hosts"][0]["name"]}
    return subprocess.run([sys.executable, "-m", "pyinfra", "-y", "-v", str(lab["work"] / "inventory.py"),
                           str(lab["work"] / "deploy.py")], capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env=env)


def _started(client) -> tuple[int, int, int]:
    code, out = run_on(client, STARTED)
    assert code == 0, out
    started, changed, starts = (int(line) for line in out.split())
    return started, changed, starts


def test_upgrade_without_restart_alone_restarts_orthanc_on_the_new_binary(old_host):
    name = old_host["hosts"][0]["name"]
    client = ssh_to(old_host, old_host["hosts"][0])
    try:
        assert run_on(client, "Orthanc --version | head -n 1")[1].split()[-1] == "1.5.7"
        _, _, starts = _started(client)

        proc = _pyinfra(old_host)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-3000:]
        assert f"[{name}] orthanc upgraded to 1.10.1" in output
        assert ("orthanc.service restarted now (upgrade.package(restart=False), but no auth.authentication follows "
                "for it in this run)") in output
        assert run_on(client, "Orthanc --version | head -n 1")[1].split()[-1] == "1.10.1"
        started, changed, after = _started(client)
        assert started >= changed, "Orthanc still runs the binary the upgrade replaced"
        assert after == starts + 1, "Orthanc must restart exactly once"
        assert run_on(client, "systemctl is-active orthanc")[1].strip() == "active"

        again = _pyinfra(old_host)
        assert again.returncode == 0 and f"[{name}] No changes" in again.stderr, again.stderr[-2000:]
        assert _started(client)[2] == after, "the second run restarts nothing"
    finally:
        client.close()
