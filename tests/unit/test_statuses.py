"""Statuses are enums whose members are their words: reports read exactly as with plain strings, and a word
outside the set fails where it is written."""

from __future__ import annotations

import json

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_state

from orthanc_harden import findings, junit_report, outcomes
from orthanc_harden.runs import remediate
from orthanc_harden.statuses import FindingStatus, HostStatus, Outcome


def _plain(value):
    """The same structure with every string a plain ``str``."""
    if isinstance(value, dict):
        return {str(k) if isinstance(k, str) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, str) else value


def test_a_report_with_enum_statuses_is_byte_identical_to_plain_words():
    rows = [{"host": f"pacs-{s}", "status": s, "reason": "", "changes": [], "waived": {}, "audit": []}
            for s in HostStatus]
    report = remediate.report(rows, "inventory.py", 0.0, False, None)
    assert all(type(row["status"]) is HostStatus for row in report["hosts"])
    assert json.dumps(report) == json.dumps(_plain(report))
    assert repr(report["summary"]) == repr(_plain(report["summary"]))
    assert list(report["summary"]) == ["changed", "compliant", "would-change", "not-compliant", "failed"]
    assert junit_report.to_xml(report) == junit_report.to_xml(_plain(report))


def test_findings_and_outcomes_carry_their_enum():
    instance = {"version": "1.5.7", "config": {"effective": {"RemoteAccessAllowed": True,
                                                             "AuthenticationEnabled": False}}}
    results = findings.evaluate(instance, waivers={"ORTH-002": "lab only"})
    assert {r.status for r in results} == {FindingStatus.FAIL, FindingStatus.WAIVED}
    assert json.dumps([r.as_dict() for r in results]) == json.dumps(_plain([r.as_dict() for r in results]))
    with ctx_state.use(State(Inventory(([], {})), Config())):
        outcomes.record("pacs-01", "auth", "changed", "done")
        assert outcomes.for_host("pacs-01")["auth"]["status"] is Outcome.CHANGED
        with pytest.raises(ValueError):
            outcomes.record("pacs-01", "auth", "chnaged", "a misspelt status")
