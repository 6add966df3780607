"""The probe calls a host firewalled only when something on input can refuse a packet. Rulesets under data/ are
real: `nft -j list ruleset` and `iptables-save -t filter` from a lab host (Debian 12, iptables-nft) with ufw
enabled, and the same host after `ufw disable`, which leaves INPUT jumping to its emptied chains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orthanc_harden.remote import load

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def probe() -> dict:
    return load("probe")


def _nft(*items) -> str:
    return json.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}, *items]})


def _chain(name, hook=None, policy="accept", table="t"):
    chain = {"family": "inet", "table": table, "name": name, "handle": 1}
    if hook:
        chain.update(type="filter", hook=hook, prio=0, policy=policy)
    return {"chain": chain}


def _rule(chain, *expr, table="t"):
    return {"rule": {"family": "inet", "table": table, "chain": chain, "handle": 2, "expr": list(expr)}}


PORT_9999 = {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9999}}


def test_a_disabled_ufw_is_no_firewall_and_an_enabled_one_is(probe):
    assert probe["nft_input_filters"]((DATA / "nft-ufw-disabled.json").read_text()) is False
    assert probe["nft_input_filters"]((DATA / "nft-ufw-enabled.json").read_text()) is True
    assert probe["iptables_input_filters"]((DATA / "iptables-ufw-disabled.save").read_text()) is False
    assert probe["iptables_input_filters"]((DATA / "iptables-ufw-enabled.save").read_text()) is True


@pytest.mark.parametrize("ruleset, filters", [
    (_nft(), False),
    (_nft(_chain("input", "input")), False),  # an empty hooked chain
    (_nft(_chain("input", "input"), _rule("input", {"counter": None}, {"accept": None})), False),
    (_nft(_chain("forward", "forward", policy="drop")), False),  # not input
    (_nft(_chain("input", "input", policy="drop")), True),
    (_nft(_chain("input", "input"), _rule("input", PORT_9999, {"drop": None})), True),
    (_nft(_chain("input", "input"), _rule("input", {"reject": {"type": "tcp reset"}})), True),
    (_nft(_chain("input", "input"), _chain("mine"), _rule("input", {"jump": {"target": "mine"}}),
          _rule("mine", PORT_9999, {"drop": None})), True),
    (_nft(_chain("input", "input"), _chain("mine"), _rule("input", {"goto": {"target": "mine"}})), False),
    # a loop of jumps ends
    (_nft(_chain("input", "input"), _chain("a"), _rule("input", {"jump": {"target": "a"}}),
          _rule("a", {"jump": {"target": "a"}})), False),
    # a chain of the same name in another table is not the one jumped to
    (_nft(_chain("input", "input"), _rule("input", {"jump": {"target": "mine"}}), _chain("mine", table="u"),
          _rule("mine", {"drop": None}, table="u")), False),
    (_nft(_chain("input", "input"), _rule("input", {"xt": {"type": "target", "name": "REJECT"}})), True),
    ("not json", True),
])
def test_nft_input_filters(probe, ruleset, filters):
    assert probe["nft_input_filters"](ruleset) is filters


@pytest.mark.parametrize("save, filters", [
    (":INPUT ACCEPT [0:0]\n", False),
    (":INPUT DROP [0:0]\n", True),
    (":INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n", False),
    (":INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 9999 -j DROP\n", True),
    (":INPUT ACCEPT [0:0]\n:mine - [0:0]\n-A INPUT -j mine\n-A mine -p tcp -j REJECT --reject-with tcp-reset\n",
     True),
    (":INPUT ACCEPT [0:0]\n:mine - [0:0]\n-A INPUT -g mine\n-A mine -j LOG\n", False),
    (":INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n-A FORWARD -j DROP\n", False),
])
def test_iptables_input_filters(probe, save, filters):
    assert probe["iptables_input_filters"](save) is filters


def test_an_inactive_ufw_is_named_and_its_ports_read_open(probe, monkeypatch):
    """The disabled-ufw host as the probe sees it: no backend filters, so every Orthanc port is open to all."""
    from orthanc_harden.audit.instances import firewall_view

    answers = {("nft", "-j", "list", "ruleset"): (DATA / "nft-ufw-disabled.json").read_text(),
               ("iptables-save", "-t", "filter"): (DATA / "iptables-ufw-disabled.save").read_text()}
    monkeypatch.setitem(probe, "run", lambda argv, timeout=15, stdin=None: (0, answers.get(tuple(argv), ""), ""))
    monkeypatch.setitem(probe, "ufw_active", lambda: False)
    monkeypatch.setattr(probe["shutil"], "which", lambda tool: f"/usr/sbin/{tool}" if tool != "firewall-cmd" else None)
    state = probe["firewall"]()
    assert (state["backend"], state["active"]) == ("ufw", False)
    assert firewall_view(state, [8042, 4242])["ports_open_to_all"] == [8042, 4242]
