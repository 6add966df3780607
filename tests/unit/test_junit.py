"""`--junit FILE` (#19): the report as JUnit XML that validates against the strict Ant/Surefire schema CI systems
read (tests/fixtures/junit/JUnit.xsd, offline), one case per host and Orthanc instance, failures in words."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from orthanc_harden import junit_report
from tests.unit.test_findings_in_words import ADVISORIES_ONLY, EXPOSED, _instance

XSD = Path(__file__).resolve().parents[1] / "fixtures" / "junit" / "JUnit.xsd"
CANARY = "Canary-junit-3f9e-\"<&>'"
META = {"tool": "orthanc-harden", "version": "0.1.0", "inventory": "fleet.py", "started": "2026-11-29T02:50:00+00:00",
        "duration_s": 4.2, "control_node": "control-01", "user": "root"}


@pytest.fixture(scope="module")
def schema():
    return xmlschema.XMLSchema(str(XSD))


def _audit() -> dict:
    gone = {"host": "pacs-03", "instance": None, "kind": None, "status": "failed", "findings": [],
            "compliant": False, "reason": "unreachable: SSH error (Error reading SSH protocol banner)",
            "traceback": f"Traceback (most recent call last):\n  password={CANARY}\nSSHException"}
    return {**META, "command": "audit", "exit_code": 2, "instances": [
        _instance("pacs-01", **EXPOSED), _instance("pacs-02", **ADVISORIES_ONLY), gone]}


def _remediate() -> dict:
    exposed = _instance(**EXPOSED)["findings"]
    return {**META, "command": "remediate", "dry": False, "exit_code": 2, "hosts": [
        {"host": "pacs-01", "status": "not-compliant", "changes": ["auth: authentication on"], "waived": {},
         "reason": "orthanc.service: ORTH-002 remote access without authentication",
         "audit": [{"instance": "orthanc.service", "status": "findings", "findings": exposed},
                   {"instance": "orthanc-research.service", "status": "compliant", "findings": []}]},
        {"host": "@dockerengine/pacs-07", "status": "changed", "changes": ["container x: authentication on"],
         "waived": {}, "reason": "", "audit": [{"instance": "orthanc-7", "status": "compliant", "findings": []}]},
        {"host": "pacs-03", "status": "failed", "changes": [], "waived": {}, "audit": [],
         "reason": "unreachable: SSH error (Error reading SSH protocol banner)",
         "traceback": f"Traceback: password {CANARY}"},
    ]}


def _cases(text: str) -> dict:
    suite = ET.fromstring(text).find("testsuite")
    return {(c.get("classname"), c.get("name")): c for c in suite.findall("testcase")}


def test_audit_junit_validates_and_has_one_case_per_instance(schema):
    text = junit_report.to_xml(_audit())
    schema.validate(text)
    cases = _cases(text)
    assert set(cases) == {("pacs-01", "orthanc.service"), ("pacs-02", "orthanc.service"), ("pacs-03", "pacs-03")}
    failure = cases[("pacs-01", "orthanc.service")].find("failure")
    assert failure.get("message") == "ORTH-002 remote access without authentication, 3 advisories"
    assert failure.get("type") == "critical"
    assert "ORTH-002 (critical) Remote access allowed with HTTP authentication off" in failure.text
    assert "fix: Set \"AuthenticationEnabled\": true" in failure.text
    assert list(cases[("pacs-02", "orthanc.service")]) == [], "compliant with advisories: a passing case"
    error = cases[("pacs-03", "pacs-03")].find("error")
    assert error.get("message").startswith("unreachable: SSH error")
    suite = ET.fromstring(text).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    assert "pacs-02 orthanc.service: ORTH-101 HTTPS off (medium)" in suite.find("system-out").text
    assert CANARY not in text and "Traceback" not in text


def test_remediate_junit_validates_with_a_case_per_host_and_instance(schema):
    text = junit_report.to_xml(_remediate())
    schema.validate(text)
    cases = _cases(text)
    assert set(cases) == {("pacs-01", "orthanc.service"), ("pacs-01", "orthanc-research.service"),
                          ("@dockerengine/pacs-07", "orthanc-7"), ("pacs-03", "pacs-03")}
    assert cases[("pacs-01", "orthanc.service")].find("failure") is not None
    assert list(cases[("pacs-01", "orthanc-research.service")]) == []
    assert cases[("pacs-03", "pacs-03")].find("error") is not None
    assert CANARY not in text and "Traceback" not in text


def test_a_dry_run_that_would_change_a_host_fails_its_case(schema):
    report = {**META, "command": "remediate", "dry": True, "exit_code": 1, "hosts": [
        {"host": "pacs-01", "status": "would-change", "changes": ["Orthanc users"], "waived": {}, "reason": "",
         "audit": []}]}
    text = junit_report.to_xml(report)
    schema.validate(text)
    failure = _cases(text)[("pacs-01", "pacs-01")].find("failure")
    assert failure.get("type") == "would-change" and "Orthanc users" in failure.text
    assert ET.fromstring(text).find("testsuite").get("name") == "orthanc-harden remediate --dry"


def test_the_schema_does_reject_what_ci_systems_would(schema):
    """The check above can fail: a case without its class name is refused."""
    text = junit_report.to_xml(_audit()).replace('classname="pacs-01" ', "", 1)
    assert not schema.is_valid(text)
