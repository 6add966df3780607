"""What `remediate --dry` shows: masked configuration diffs, firewall rule changes, the plan as text; and the lab
composition that gives the demo hosts below 1.5.8."""

from __future__ import annotations

import pytest

from orthanc_harden import planned
from orthanc_harden.lab import fleet
from orthanc_harden.remote import load

CANARY = "Canary-unit-9b2\"x'"
CONFIG = """{
  // the administrator's comment
  "Name" : "PACS-EAST",
  "RemoteAccessAllowed" : true,
  "AuthenticationEnabled" : false,  /* explicit */
  "OrthancPeers" : { "peer" : [ "http://peer:8042", "peeruser", "PeerSecret-1" ] },
  "RegisteredUsers" : {
    // "bob" : "CommentedSecret-2"
    "old" : "OldSecret-3"
  }
}
"""
SECRETS = (CANARY, "PeerSecret-1", "CommentedSecret-2", "OldSecret-3")


@pytest.fixture(scope="module")
def editor():
    return load("auth")


def _plan(editor, text: str, users: dict) -> tuple[dict, dict]:
    request = {"config_path": "/etc/orthanc/orthanc.json", "users": users}
    return editor["plan"](request, editor["parse_texts"]({"/etc/orthanc/orthanc.json": text}))


def test_the_diff_shows_what_changes_and_no_secret(editor):
    _, summary = _plan(editor, CONFIG, {"radiology": CANARY})
    diff = summary["diffs"]["/etc/orthanc/orthanc.json"]
    assert '-  "AuthenticationEnabled" : false,  /* explicit */' in diff
    assert '+  "AuthenticationEnabled" : true,  /* explicit */' in diff
    assert '+    "radiology" : "*MASKED*"' in diff and '-    "old" : "*MASKED*"' in diff
    assert diff.startswith("--- /etc/orthanc/orthanc.json\n+++ /etc/orthanc/orthanc.json (planned)\n")
    for secret in SECRETS:
        assert secret not in diff


def test_masking_keeps_keys_reported_values_and_comments_outside_the_users(editor):
    masked = editor["masked_text"](CONFIG)
    assert '"Name" : "PACS-EAST"' in masked and "// the administrator's comment" in masked
    assert '"peer" : [ "*MASKED*", "*MASKED*", "*MASKED*" ]' in masked
    assert "    // *MASKED*\n" in masked  # a user commented out keeps its password secret too
    assert editor["parse_config"](masked)["RegisteredUsers"] == {"old": "*MASKED*"}
    for secret in SECRETS:
        assert secret not in masked


def test_a_password_change_alone_is_said_without_showing_it(editor):
    text = '{\n  "AuthenticationEnabled" : true,\n  "RegisteredUsers" : {\n    "old" : "OldSecret-3"\n  }\n}\n'
    _, summary = _plan(editor, text, {"old": CANARY})
    diff = summary["diffs"]["/etc/orthanc/orthanc.json"]
    assert "(only masked values change)" in diff and CANARY not in diff and "OldSecret-3" not in diff


def test_a_new_file_is_diffed_from_dev_null(editor):
    diff = editor["masked_diff"]("/etc/orthanc/orthanc-harden-users.json", None,
                                 '{\n  "RegisteredUsers" : {\n    "a" : "%s"\n  }\n}\n' % "Secret-4")
    assert diff.startswith("--- /dev/null\n") and '+    "a" : "*MASKED*"' in diff and "Secret-4" not in diff


def test_firewall_changes_are_the_rules_added_and_removed():
    firewall = load("firewall")
    step = {"current_rules": ["iptables -A ORTHANC-HARDEN -s 10.0.0.0/8 -j RETURN", "iptables KEEP"],
            "wanted_rules": ["iptables KEEP", "iptables -A ORTHANC-HARDEN -s 10.20.0.0/16 -j RETURN"],
            "files": {"/etc/x.nft": [None, "table inet x {\n}\n"]}}
    changes = firewall["planned_changes"]("iptables", step, False, None)
    assert changes["add"] == ["iptables -A ORTHANC-HARDEN -s 10.20.0.0/16 -j RETURN"]
    assert changes["remove"] == ["iptables -A ORTHANC-HARDEN -s 10.0.0.0/8 -j RETURN"]
    assert changes["diffs"]["/etc/x.nft"].startswith("--- /dev/null\n+++ /etc/x.nft (planned)\n")
    moved = firewall["planned_changes"]("ufw", {"current_rules": ["a"], "wanted_rules": ["a"]}, False, None)
    assert moved["add"] == ["(the same rules, moved to lead the ufw list)"] and moved["remove"] == []


def test_the_plan_reads_as_text_per_host():
    plan = {"packages": [{"name": "orthanc", "from": "1.5.7+lab-1", "to": "1.10.1+dfsg-2", "note": ""}],
            "containers": [{"container": "pacs", "settings": {"image": {"from": "jodogne/orthanc:1.5.7",
                                                                        "to": "jodogne/orthanc:1.10.1"}}}],
            "firewall": [{"backend": "ufw", "add": ["ufw --force enable"], "remove": [], "notes": []}],
            "files": [{"path": "/etc/orthanc/orthanc.json", "diff": "--- a\n+++ b\n-x\n+y\n"}]}
    text = planned.render({"hosts": [{"host": "pacs-01", "plan": plan}, {"host": "quiet", "plan": {}}]})
    assert text.splitlines() == [
        "== pacs-01: what would change (nothing was changed) ==",
        "package orthanc: 1.5.7+lab-1 -> 1.10.1+dfsg-2",
        "container pacs:", "  image: jodogne/orthanc:1.5.7 -> jodogne/orthanc:1.10.1",
        "firewall (ufw):", "  + ufw --force enable",
        "--- a", "+++ b", "-x", "+y"]


def test_records_replace_by_key_and_clear():
    planned.clear()
    planned.record("h", "packages", "orthanc", {"name": "orthanc", "to": "1"})
    planned.record("h", "packages", "orthanc", {"name": "orthanc", "to": "2"})
    assert planned.for_host("h") == {"packages": [{"name": "orthanc", "to": "2"}]}
    planned.clear()
    assert planned.for_host("h") == {}
    with planned.dry_run():
        assert planned.dry()
    assert not planned.dry()


def test_the_default_lab_has_one_host_and_one_container_below_the_floor():
    default = fleet.LabSpec()
    assert (default.old_hosts, default.old_containers) == (1, 1)
    assert [(m.name, m.old) for m in fleet.members(default)] == [
        ("lab-pkg-1", False), ("lab-pkg-2", False), ("lab-pkg-3", True), ("lab-docker-1", True)]
    other = fleet.LabSpec(lab="pytest-x")
    assert (other.old_hosts, other.old_containers) == (0, 0)
    assert fleet.LabSpec(lab="x", hosts=2, containers=0, old_hosts=2).old_hosts == 2
    with pytest.raises(fleet.LabError):
        fleet.LabSpec(lab="x", hosts=1, old_hosts=2).validate()


def test_docker_user_rules_and_files_are_in_the_plan(monkeypatch):
    fw = load("firewall")
    monkeypatch.setitem(fw, "docker_engine", lambda: {"id": "E", "containers": []})
    monkeypatch.setitem(fw, "published_orthanc_ports", lambda engine: [
        {"container": "pacs", "port": 8042, "host_ip": "0.0.0.0", "host_port": 18042}])
    monkeypatch.setitem(fw, "docker_user_live", lambda: {"iptables": {"rules": ["-A OLD"], "jump_first": True,
                                                                       "jumps": 1, "chain": True}})
    monkeypatch.setitem(fw, "_read", lambda path: None)
    monkeypatch.setitem(fw, "_systemd", lambda: True)
    monkeypatch.setitem(fw, "input_plan", lambda request, ports, v4, v6: {"input_changed": False})
    result = fw["plan"]({"ports": [], "cidrs": ["10.0.0.0/8"], "docker": True, "allow_empty": False})
    assert result["changed"] and result["remove"] == ["iptables -A OLD"]
    assert result["add"] and all(rule.startswith("iptables -A ") for rule in result["add"])
    assert set(result["diffs"]) == {fw["DOCKER_SCRIPT"], fw["DOCKER_UNIT"]}
    assert result["diffs"][fw["DOCKER_SCRIPT"]].startswith("--- /dev/null\n")
