"""The audit's ORTH-005 on hosts whose firewall tooling is present but filters nothing. `ufw disable` leaves INPUT
jumping to ufw's emptied chains, and an nftables table can hook input with no rule: the probe once read either as
an active firewall, and the audit then called Orthanc's open ports compliant. A ruleset that does refuse packets on
input is still recognised."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import run_cli
from tests.integration.conftest import fresh_lab, run_on, ssh_to

pytestmark = pytest.mark.lab

LAB = os.environ.get("OH_PROBE_FW_TEST_LAB", "pytest-probefw")
PORT_BASE = int(os.environ.get("OH_PROBE_FW_TEST_PORT_BASE", "18200"))


@pytest.fixture(scope="module")
def host():
    data = fresh_lab(LAB, 1, 0, PORT_BASE)
    client = ssh_to(data, data["hosts"][0])
    yield {"data": data, "client": client}
    client.close()
    run_cli("lab", "down", "--lab", LAB)


def _plant(host, command: str) -> None:
    code, out = run_on(host["client"], command)
    assert code == 0, f"{command}: {out}"


def _audit(host, tmp_path) -> dict:
    report = tmp_path / "audit.json"
    proc = run_cli("audit", "inventories/lab.py", "--json", str(report), env={"ORTHANC_HARDEN_LAB": LAB},
                   timeout=300)
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]
    (instance,) = json.loads(report.read_text())["instances"]
    return {"firewall": instance["firewall"], "findings": {f["id"]: f for f in instance["findings"]}}


def test_disabled_ufw_and_an_empty_input_hook_leave_orthanc_open(host, tmp_path):
    _plant(host, "ufw --force enable && ufw disable && iptables-save -t filter | grep -q -- '-A INPUT -j ufw-'")
    seen = _audit(host, tmp_path)
    assert seen["firewall"] == {"backend": "ufw", "active": False, "ports_open_to_all": [8042, 4242]}
    assert "8042, 4242 open to every source" in seen["findings"]["ORTH-005"]["detail"]

    _plant(host, "nft add table inet foreign && "
                 "nft add chain inet foreign input '{ type filter hook input priority 0; policy accept; }' && "
                 "nft add rule inet foreign input tcp dport 9999 counter accept")
    seen = _audit(host, tmp_path)
    assert seen["firewall"]["ports_open_to_all"] == [8042, 4242] and "ORTH-005" in seen["findings"]

    # The positive control: a rule that refuses makes it a firewall the audit leaves to the firewall control.
    _plant(host, "nft add rule inet foreign input tcp dport 9999 drop")
    seen = _audit(host, tmp_path)
    assert seen["firewall"]["backend"] == "nftables" and seen["firewall"]["active"] is True
    assert "ORTH-005" not in seen["findings"]
    _plant(host, "nft delete table inet foreign")
