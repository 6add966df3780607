"""Firewall rules as text (the remote program's builders) and operations.firewall.restrict: facts in, commands out.
The real backends run in tests/integration/test_firewall.py."""

from __future__ import annotations

import json

import pytest
from pyinfra.api import FunctionCommand
from pyinfra.context import ctx_host

from orthanc_harden import outcomes
from orthanc_harden.facts.orthanc import OrthancFirewallPlan
from orthanc_harden.operations import firewall, report
from orthanc_harden.remote import program


@pytest.fixture(scope="module")
def remote() -> dict:
    namespace: dict = {"__name__": "orthanc_harden_firewall_spec"}
    exec(compile(program("firewall"), "firewall-program", "exec"), namespace)  # noqa: S102 - our own program
    return namespace


def test_nftables_ruleset(remote):
    text = remote["nft_ruleset"]([4242, 8042], ["10.0.0.0/8"], [])
    assert "table inet orthanc_harden {" in text
    assert "set allowed_v4 { type ipv4_addr; flags interval; elements = { 10.0.0.0/8 } }" in text
    assert "set allowed_v6 { type ipv6_addr; flags interval; }" in text  # an empty set has no elements clause
    assert text.splitlines()[-4:-2] == ["    tcp dport { 4242, 8042 } ip6 saddr @allowed_v6 accept",
                                        "    tcp dport { 4242, 8042 } drop"]


def test_iptables_rules_in_iptables_save_order(remote):
    assert remote["ipt_rules"]([8042], ["172.18.0.1/32"]) == [
        "-A ORTHANC-HARDEN -s 172.18.0.1/32 -p tcp -m multiport --dports 8042 -m comment --comment orthanc-harden "
        "-j RETURN",
        "-A ORTHANC-HARDEN -p tcp -m multiport --dports 8042 -m comment --comment orthanc-harden -j DROP",
    ]


def test_ufw_tuples_allow_then_deny_per_family(remote):
    desired = remote["_ufw_desired"]([8042], ["172.18.0.1/32", "10.0.0.0/8"], ["fd00::/64"])
    assert [(r["action"], r["src"]) for r in desired["v4"]] == [
        ("allow", "172.18.0.1"), ("allow", "10.0.0.0/8"), ("deny", "0.0.0.0/0")]
    assert [(r["action"], r["src"]) for r in desired["v6"]] == [("allow", "fd00::/64"), ("deny", "::/0")]


@pytest.mark.parametrize("request_, message", [
    ({"ports": [8042], "cidrs": ["10.0.0.300/8"]}, "invalid CIDR"),
    ({"ports": [0], "cidrs": ["10.0.0.0/8"]}, "ports must be TCP ports"),
    ({"ports": [22, 8042], "cidrs": ["10.0.0.0/8"], "ssh_port": 22}, "is SSH's"),
    ({"ports": [8042], "cidrs": []}, "the allow list is empty"),
])
def test_program_validation(remote, request_, message):
    with pytest.raises(remote["FirewallError"], match=message):
        remote["validate"](request_)


class FakeHost:
    name = "pacs-01"

    def __init__(self, plan):
        self.plan, self.noops, self.requests = plan, [], []

    def get_fact(self, cls, mode, _stdin):
        assert cls is OrthancFirewallPlan
        self.requests.append((mode, json.loads(_stdin.getvalue())))
        return self.plan

    def noop(self, message):
        self.noops.append(message)


def _run(plan, **kwargs):
    fake = FakeHost(plan)
    outcomes.clear()
    with ctx_host.use(fake):
        commands = list(firewall.restrict._inner(**{"ports": [8042, 4242], "cidrs": ["10.0.0.0/8"], **kwargs}))
    return fake, commands


def test_no_change_is_a_no_op():
    fake, commands = _run({"backend": "ufw", "changed": False, "problems": []})
    assert commands == [] and fake.noops == ["firewall (ufw): rules already as wanted"]
    assert fake.requests == [("check", {"ports": [4242, 8042], "cidrs": ["10.0.0.0/8"], "backend": "auto",
                                        "enable": False, "allow_empty": False, "ssh_port": 22})]


def test_change_applies_with_the_same_request():
    fake, commands = _run({"backend": "nftables", "changed": True, "problems": []}, cidrs=["10.0.0.1", "fd00::/8"])
    (apply,) = commands
    assert isinstance(apply, FunctionCommand) and apply.args[0] == "apply"
    assert json.loads(apply.args[1])["cidrs"] == ["10.0.0.1/32", "fd00::/8"]


def test_unsupported_firewall_is_reported_not_compliant_without_change():
    fake, commands = _run({"error": "ufw is installed but inactive: not enabling it", "unsupported": True})
    assert commands == []
    assert outcomes.for_host("pacs-01")["firewall"]["status"] == "not-compliant"


def test_removal_needs_no_ports_or_cidrs():
    fake, commands = _run({"changed": True, "removed": ["nftables"]}, ports=[], cidrs=[], present=False)
    assert fake.requests[0][0] == "remove-check" and commands[0].args[0] == "remove"


@pytest.mark.parametrize("kwargs", [{"cidrs": ["10.0.0.300/8"]}, {"cidrs": []}, {"ports": [70000]},
                                    {"ports": [22]}, {"backend": "pf"}])
def test_bad_input_is_refused_before_asking_the_host(kwargs):
    fake = FakeHost({})
    with ctx_host.use(fake):
        (command,) = firewall.restrict._inner(**{"ports": [8042], "cidrs": ["10.0.0.0/8"], **kwargs})
    # This host fails with the cause; raised, the error would stop every other host's later steps (#17).
    assert command.function is report._fail and command.args[1].startswith("firewall: ")
    assert fake.requests == []


def test_iptables_in_use_ignores_the_jumps_a_disabled_ufw_leaves(remote):
    disabled_ufw = ":INPUT ACCEPT [0:0]\n-A INPUT -j ufw-before-logging-input\n-A INPUT -j ufw-before-input\n" \
                   "-A INPUT -j ufw-after-input\n-A INPUT -j ufw-reject-input\n"
    assert remote["iptables_in_use"](disabled_ufw) is False
    assert remote["iptables_in_use"](disabled_ufw + "-A INPUT -p tcp --dport 22 -j ACCEPT\n") is True
    assert remote["iptables_in_use"](":INPUT DROP [0:0]\n") is True
    assert remote["iptables_in_use"](":INPUT ACCEPT [0:0]\n") is False
