"""operations.firewall.restrict with real ufw, nftables and iptables inside lab containers (NET_ADMIN).

Allowed source: the control node, through the published port (Orthanc sees the lab network's gateway). Disallowed
source: another lab container on the lab's own network. Nothing else is ever contacted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from tests.conftest import ROOT, run_cli, unavailable
from tests.integration.conftest import SUBSET_INVENTORY, fresh_lab, ssh_to
from tests.integration.conftest import run_on as _sh

pytestmark = pytest.mark.lab

# Overridable so that parallel runs each use a lab and ports of their own.
LAB = os.environ.get("OH_FIREWALL_TEST_LAB", "pytest-firewall")
PORT_BASE = int(os.environ.get("OH_FIREWALL_TEST_PORT_BASE", "29600"))
V6_NET = "fd00:4242::/64"  # exercises the IPv6 rules; no IPv6 traffic runs in the lab


@pytest.fixture(scope="module")
def fw_lab(tmp_path_factory):
    data = fresh_lab(LAB, 5, 0, PORT_BASE)
    inventory = tmp_path_factory.mktemp("fw") / "inventory.py"
    inventory.write_text(SUBSET_INVENTORY)
    data["inventory"] = str(inventory)
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _deploy(lab, entry, **data) -> tuple[int, str]:
    env = {**os.environ, "ORTHANC_HARDEN_LAB": LAB, "OH_TEST_HOSTS": entry["name"],
           "OH_TEST_DATA": json.dumps({entry["name"]: data})}
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "-v", lab["inventory"], "deploys/firewall.py"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def _allowed(entry) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{entry['http_port']}/system", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _from_other_container(lab, target, port: int = 8042) -> bool:
    source = ssh_to(lab, lab["hosts"][3])
    code, _ = _sh(source, f"curl -s -o /dev/null --max-time 3 http://{target['ip']}:{port}/system")
    source.close()
    return code == 0


FIREWALLD = 4
FIREWALLD_PLANT = ("firewall-cmd --permanent --add-port=8042/tcp --add-port=4242/tcp --add-port=9999/tcp && "
                   "firewall-cmd --reload")


@pytest.fixture(scope="module")
def firewalld_host(fw_lab):
    """Debian's firewalld, installed from the mirror inside the lab host; it starts with the public zone."""
    client = ssh_to(fw_lab, fw_lab["hosts"][FIREWALLD])
    code, out = _sh(client, "command -v firewall-cmd || (DEBIAN_FRONTEND=noninteractive apt-get update -qq && "
                            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firewalld >/dev/null) && "
                            "timeout 60 sh -c 'until firewall-cmd --state; do sleep 1; done'")
    client.close()
    if code != 0:
        unavailable(f"firewalld could not be installed in the lab host: {out[-300:]}")
    return fw_lab["hosts"][FIREWALLD]


BACKENDS = {
    # name: (host index, planting, reload, foreign rule check, extra data)
    "firewalld": (FIREWALLD, FIREWALLD_PLANT, "firewall-cmd --reload", "firewall-cmd --list-ports | grep -q 9999/tcp",
                  {}),
    # Enabled once and disabled: INPUT keeps jumps to empty ufw-* chains, which must not read as iptables in use.
    "ufw": (0, "ufw --force enable && ufw disable && ufw allow 9999/tcp comment foreign", "ufw reload",
            "ufw status | grep -q '9999/tcp.*# foreign'", {"orthanc_harden_firewall_enable": True}),
    "nftables": (1, "systemctl enable --now nftables && nft add table inet foreign && "
                    "nft add chain inet foreign input '{ type filter hook input priority 0; }' && "
                    "echo 'table inet foreign { chain input { type filter hook input priority 0; }; }' >> "
                    "/etc/nftables.conf",
                 "systemctl restart nftables", "nft list table inet foreign >/dev/null", {}),
    "iptables": (2, "iptables -A INPUT -p tcp --dport 9999 -m comment --comment foreign -j ACCEPT", None,
                 "iptables-save | grep -q 'comment foreign'", {}),
}


def test_firewalld_runtime_only_changes_are_not_discarded_by_a_reload(fw_lab, firewalld_host):
    client = ssh_to(fw_lab, firewalld_host)
    assert _sh(client, FIREWALLD_PLANT + " && firewall-cmd --add-port=7777/tcp")[0] == 0  # runtime only
    before = _sh(client, "firewall-cmd --list-all-policies; firewall-cmd --permanent --list-all-policies; "
                         "firewall-cmd --list-ports")[1]
    data = {"orthanc_harden_allowed_cidrs": ["10.1.0.0/16"]}
    code, output = _deploy(fw_lab, firewalld_host, **data)
    after = _sh(client, "firewall-cmd --list-all-policies; firewall-cmd --permanent --list-all-policies; "
                        "firewall-cmd --list-ports")[1]
    _sh(client, "firewall-cmd --remove-port=7777/tcp")
    client.close()
    assert code != 0, "a refused firewall makes the host not compliant"
    assert (f"[{firewalld_host['name']}] firewall not changed: firewalld has runtime changes that are not in "
            "its permanent configuration") in output, output[-2000:]
    assert after == before and "7777/tcp" in after


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_backend_restricts_survives_reload_is_idempotent_and_removes_exactly(fw_lab, backend, request):
    index, plant, reload, foreign, extra = BACKENDS[backend]
    if backend == "firewalld":
        request.getfixturevalue("firewalld_host")
    entry = fw_lab["hosts"][index]
    client = ssh_to(fw_lab, entry)
    _, gateway = _sh(client, "ip route | awk '/^default/ {print $3}'")
    assert _sh(client, plant)[0] == 0
    assert _allowed(entry) and _from_other_container(fw_lab, entry), "Orthanc must start open to both sources"
    data = {"orthanc_harden_allowed_cidrs": [f"{gateway.strip()}/32", V6_NET], **extra}

    code, output = _deploy(fw_lab, entry, **data)
    assert code == 0, output[-2000:]
    assert f"[{entry['name']}] Orthanc ports restricted with {backend}" in output
    assert _allowed(entry), "the allowed source must still reach Orthanc"
    assert not _from_other_container(fw_lab, entry), "a source outside the allowed networks must not"
    assert not _from_other_container(fw_lab, entry, 4242), "the DICOM port is restricted too"
    ssh_again = ssh_to(fw_lab, entry)  # SSH still works
    ssh_again.close()
    if backend == "iptables":
        assert "iptables rules are not persistent: netfilter-persistent is not installed" in output
    if backend == "firewalld":
        assert "firewalld reloaded once to activate the new policy orthanc-harden" in output

    code, output = _deploy(fw_lab, entry, **data)
    assert code == 0 and f"[{entry['name']}] No changes" in output, output[-2000:]

    if reload:
        assert _sh(client, reload)[0] == 0
        assert _allowed(entry) and not _from_other_container(fw_lab, entry), f"rules lost after `{reload}`"
        code, output = _deploy(fw_lab, entry, **data)
        assert f"[{entry['name']}] No changes" in output, "a reload must not make the next run change anything"
    assert _sh(client, foreign)[0] == 0, "the foreign rule must stay"

    code, output = _deploy(fw_lab, entry, orthanc_harden_firewall_remove=True)
    assert code == 0 and f"[{entry['name']}] Orthanc ports removed" in output, output[-2000:]
    if backend == "ufw":
        # ufw stays enabled with its default policy and the SSH rule (removing that could lock everyone out).
        _, rules = _sh(client, "ufw status")
        assert "# orthanc-harden\n" not in rules + "\n" and "orthanc-harden-ssh" in rules
        assert [line for line in rules.splitlines() if "# orthanc-harden" in line and "-ssh" not in line] == []
    else:
        assert _from_other_container(fw_lab, entry), "after removal the other source reaches Orthanc again"
    assert _sh(client, foreign)[0] == 0
    code, output = _deploy(fw_lab, entry, orthanc_harden_firewall_remove=True)
    assert f"[{entry['name']}] No changes" in output
    client.close()


def _snapshot(client) -> str:
    # Rules without their packet counters, which an active firewall moves with every packet.
    return _sh(client, "iptables-save | grep -v '^#' | sed 's/ \\[[0-9]*:[0-9]*\\]$//'; nft -s list ruleset; "
                       "ufw status; cat /etc/nftables.conf")[1]


@pytest.mark.parametrize("data, expected", [
    ({"orthanc_harden_allowed_cidrs": ["10.0.0.300/8"]},
     "host data: orthanc_harden_allowed_cidrs: '10.0.0.300/8' is not an IPv4 or IPv6 network"),
    ({"orthanc_harden_allowed_cidrs": ["10.1.0.0/16"]},
     "firewall not changed: ufw is installed but inactive: not enabling it"),
    ({"orthanc_harden_allowed_cidrs": []}, "orthanc_harden_allowed_cidrs is empty"),
    ({"orthanc_harden_allowed_cidrs": ["10.1.0.0/16"], "orthanc_harden_firewall_backend": "pf"},
     "orthanc_harden_firewall_backend must be one of auto, firewalld, ufw, nftables, iptables"),
    ({"orthanc_harden_allowed_cidrs": ["10.1.0.0/16"], "orthanc_harden_firewall_backend": "firewalld"},
     "firewall backend firewalld was asked for, but this host uses ufw"),
])
def test_bad_input_and_unusable_firewall_change_nothing(fw_lab, data, expected):
    entry = fw_lab["hosts"][3]  # untouched by the backend tests: ufw installed, inactive; no rules
    client = ssh_to(fw_lab, entry)
    before = _snapshot(client)
    # The lab inventory lets ufw be enabled (for the fleet demo); this host's must stay inactive.
    code, output = _deploy(fw_lab, entry, **{"orthanc_harden_firewall_enable": False, **data})
    assert f"[{entry['name']}] " in output and expected in output, output[-2000:]
    assert _snapshot(client) == before
    client.close()



def test_a_foreign_allow_all_ufw_rule_fails_the_host_and_changes_nothing(fw_lab):
    entry = fw_lab["hosts"][3]  # last user of this host: the bad-input tests above need its ufw inactive
    client = ssh_to(fw_lab, entry)
    try:
        assert _sh(client, "ufw allow 22/tcp && ufw allow 8042/tcp && ufw --force enable")[0] == 0
        before = _snapshot(client)
        code, output = _deploy(fw_lab, entry, orthanc_harden_allowed_cidrs=["10.1.0.0/16"])
        assert code != 0, output[-2000:]
        assert (f"[{entry['name']}] firewall not changed: ufw rule 'allow 8042/tcp' (not ours) opens port 8042 to "
                "every source") in output, output[-2000:]
        assert _snapshot(client) == before
    finally:
        _sh(client, "ufw --force reset >/dev/null; ufw --force disable")
        client.close()
