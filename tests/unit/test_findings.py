"""The findings catalogue: each control fails on its bad state, passes on the good one, and never guesses."""

from __future__ import annotations

import copy

import pytest

from orthanc_harden import findings

SAFE = {
    "host": "pacs-01", "instance": "orthanc.service", "kind": "package", "version": "1.10.1",
    "config": {
        "effective": {"RemoteAccessAllowed": True, "AuthenticationEnabled": True, "HttpPort": 8042,
                      "DicomPort": 4242, "SslEnabled": True, "WebDavEnabled": False, "ExecuteLuaEnabled": False,
                      "DicomAlwaysAllowEcho": False, "DicomAlwaysAllowStore": False, "DicomAlwaysAllowFind": False,
                      "DicomAlwaysAllowGet": False, "DicomAlwaysAllowMove": False, "DicomCheckCalledAet": True,
                      "DicomServerEnabled": True, "HttpDescribeErrors": False,
                      "RestApiWriteToFileSystemEnabled": False},
        "explicit": ["RemoteAccessAllowed", "AuthenticationEnabled"], "duplicates": {}, "parse_errors": {},
        "users": ["radiology"], "default_credentials": [], "service_group": "orthanc",
        "user_files": [{"path": "/etc/orthanc/credentials.json", "owner": "root", "group": "orthanc",
                        "mode": "0640"}],
    },
    "firewall": {"backend": "ufw", "active": True, "ports_open_to_all": []},
    "probe": {"url": "http://pacs-01:8042", "anonymous_status": 401, "default_credentials_accepted": []},
}


def _ids(instance, **kwargs) -> set[str]:
    return {r.control.id for r in findings.evaluate(instance, **kwargs) if r.status == "fail"}


def _with(path: str, value):
    instance = copy.deepcopy(SAFE)
    *parents, leaf = path.split(".")
    target = instance
    for part in parents:
        target = target[part]
    target[leaf] = value
    return instance


def test_the_safe_instance_has_no_finding():
    assert findings.evaluate(SAFE) == []
    assert findings.summarise([])["compliant"] is True


@pytest.mark.parametrize("path, value, expected", [
    ("version", "1.5.7", "ORTH-001"),
    ("config.effective.AuthenticationEnabled", False, "ORTH-002"),
    ("config.users", [], "ORTH-003"),
    ("config.default_credentials", ["orthanc"], "ORTH-003"),
    ("probe.default_credentials_accepted", ["demo"], "ORTH-003"),
    ("config.user_files", [{"path": "/etc/orthanc/credentials.json", "owner": "root", "group": "orthanc",
                            "mode": "0644"}], "ORTH-004"),
    ("config.user_files", [{"path": "/etc/orthanc/credentials.json", "owner": "root", "group": "staff",
                            "mode": "0640"}], "ORTH-004"),
    ("firewall.ports_open_to_all", [8042], "ORTH-005"),
    ("config.duplicates", {"RegisteredUsers": ["/etc/orthanc/a.json", "/etc/orthanc/b.json"]}, "ORTH-006"),
    ("config.parse_errors", {"/etc/orthanc/x.json": "line 3: Expecting ',' delimiter"}, "ORTH-007"),
    ("config.effective.SslEnabled", False, "ORTH-101"),
    ("config.effective.WebDavEnabled", True, "ORTH-102"),
    ("config.effective.ExecuteLuaEnabled", True, "ORTH-103"),
    ("config.effective.DicomAlwaysAllowStore", True, "ORTH-104"),
    ("config.effective.DicomCheckCalledAet", False, "ORTH-105"),
    ("config.effective.HttpDescribeErrors", True, "ORTH-106"),
    ("probe.anonymous_status", 200, "ORTH-108"),
])
def test_each_control_fails_exactly_on_its_bad_state(path, value, expected):
    assert _ids(_with(path, value)) == {expected}


def test_filesystem_write_control_depends_on_the_version_that_has_it():
    bad = _with("config.effective.RestApiWriteToFileSystemEnabled", True)
    assert _ids(bad) == set()  # 1.10.1 has no such option
    bad["version"] = "1.12.1"
    assert _ids(bad) == {"ORTH-107"}


def test_version_floor_edges_and_raised_floor():
    assert _ids(_with("version", "1.5.8")) == set()
    assert _ids(_with("version", "1.10.1+dfsg-2+deb12u1")) == set()
    raised = findings.evaluate(SAFE, min_version="1.12.0")
    assert [(r.control.id, r.detail) for r in raised] == [
        ("ORTH-001", "version 1.10.1 (below the configured floor 1.12.0)")]


def test_unknown_inputs_are_not_guessed():
    unknown = {"host": "pacs-09", "instance": "x", "kind": "package", "version": None, "config": None,
               "firewall": {"backend": "nftables", "active": True, "ports_open_to_all": None}, "probe": None}
    assert findings.evaluate(unknown) == []


def test_waived_findings_are_reported_as_waived_not_hidden():
    instance = _with("config.effective.WebDavEnabled", True)
    (result,) = findings.evaluate(instance, waivers={"ORTH-102": "reading room uses WebDAV (CHG-1234)"})
    assert (result.status, result.waiver) == ("waived", "reading room uses WebDAV (CHG-1234)")
    assert findings.summarise([result]) == {"compliant": True, "worst": None, "failed": [], "waived": ["ORTH-102"]}


def test_only_critical_and_high_block_compliance():
    medium = findings.evaluate(_with("config.effective.SslEnabled", False))
    assert findings.summarise(medium)["compliant"] is True and findings.summarise(medium)["worst"] == "medium"
    critical = findings.evaluate(_with("config.effective.AuthenticationEnabled", False))
    assert findings.summarise(critical)["compliant"] is False and findings.summarise(critical)["worst"] == "critical"


def test_detail_of_auth_off_says_whether_it_was_explicit():
    implicit = _with("config.effective.AuthenticationEnabled", False)
    implicit["config"]["explicit"] = ["RemoteAccessAllowed"]
    (result,) = findings.evaluate(implicit)
    assert result.detail == "RemoteAccessAllowed is true and AuthenticationEnabled is off by default"
