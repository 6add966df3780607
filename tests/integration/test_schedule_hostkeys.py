"""Issue #18.8: an unattended run must not trust host keys on first use: deploys/schedule.py refuses an inventory
whose SSH hosts lack strict host key checking against a known_hosts file, unless waived in writing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

INSTALLED = [Path("/etc/cron.d/orthanc-harden-remediate"), Path("/etc/systemd/system/orthanc-harden-remediate.timer")]


def _schedule(inventory: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyinfra", *extra, "@local", "deploys/schedule.py",
                           "--data", f"orthanc_harden_schedule_inventory={inventory}"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_trust_on_first_use_is_refused_and_nothing_installed(tmp_path):
    inventory = tmp_path / "fleet.py"
    inventory.write_text("pacs = [('pacs-01', {'ssh_hostname': '127.0.0.1', 'ssh_port': 9}),\n"
                         "        ('pacs-02', {'ssh_hostname': '127.0.0.1', 'ssh_port': 9,\n"
                         "                     'ssh_strict_host_key_checking': 'yes',\n"
                         f"                     'ssh_known_hosts_file': '{tmp_path / 'known_hosts'}'}})]\n")
    assert not any(p.exists() for p in INSTALLED), "a schedule is already installed on this machine"
    try:
        proc = _schedule(inventory, "-y")
        installed = [p for p in INSTALLED if p.exists()]
    finally:  # a refusal that did not happen must not leave a schedule on this machine
        _schedule(inventory, "-y", "--data", "orthanc_harden_schedule_remove=true")
    output = proc.stdout + proc.stderr
    assert "1 SSH host(s) without strict host key checking against a known_hosts file (pacs-01)" in output, output
    assert "Traceback" not in output
    assert installed == []


def test_a_written_waiver_lets_it_through(tmp_path):
    inventory = tmp_path / "fleet.py"
    inventory.write_text("pacs = [('pacs-01', {'ssh_hostname': '127.0.0.1', 'ssh_port': 9})]\n")
    proc = _schedule(inventory, "--dry", "--data", 'orthanc_harden_waivers={"ssh_host_keys": "isolated lab"}')
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-2000:]
    assert "without strict host key checking" not in output
    assert "Scheduled orthanc-harden remediate" in output
