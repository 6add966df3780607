"""Findings in words (#19): tables name each blocking finding by ID and short title, worst first; advisories are
counted apart and listed with -v; the catalogue and the README table come from findings.py; the scheduled run's
line says what is wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from rich.console import Console

from orthanc_harden import findings
from orthanc_harden.audit import render, words
from tests.table_cells import row_of
from tests.unit.test_findings import SAFE

README = Path(__file__).resolve().parents[2] / "README.md"
ENGINE = "@dockerengine/a-rather-long-engine-name-for-the-radiology-department"


def _instance(host: str = "pacs-01", **effective) -> dict:
    instance = copy.deepcopy(SAFE)
    instance["host"] = host
    instance["config"]["effective"].update(effective)
    results = findings.evaluate(instance)
    instance["findings"] = [r.as_dict() for r in results]
    instance["compliant"] = findings.summarise(results)["compliant"]
    instance["status"] = "compliant" if instance["compliant"] else "findings"
    return instance


EXPOSED = dict(AuthenticationEnabled=False, SslEnabled=False, WebDavEnabled=True, HttpDescribeErrors=True)
ADVISORIES_ONLY = dict(SslEnabled=False, WebDavEnabled=True, DicomCheckCalledAet=False, HttpDescribeErrors=True,
                       ExecuteLuaEnabled=True)


def _audit_report(*rows) -> dict:
    return {"inventory": "fleet.py", "instances": list(rows)}


def _text(renderable, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_blocking_findings_are_named_worst_first_and_advisories_counted_apart():
    exposed = _instance(**EXPOSED)
    exposed["probe"] = None
    found = exposed["findings"]
    assert [f["id"] for f in words.blocking(found)] == ["ORTH-002"]
    assert [f["id"] for f in words.advisories(found)] == ["ORTH-101", "ORTH-102", "ORTH-106"]
    assert words.cell(found) == "ORTH-002 remote access without authentication"
    assert words.status("findings", found) == "findings, 3 advisories"
    assert words.cell(found, verbose=True).splitlines()[1:] == [
        "ORTH-101 HTTPS off (medium)", "ORTH-102 WebDAV on (low)", "ORTH-106 HTTP errors described (info)"]
    critical_then_high = [f for f in found] + [{"id": "ORTH-003", "status": "fail"}]  # bare ID: words added
    assert words.summary(critical_then_high) == ("ORTH-002 remote access without authentication, "
                                                 "ORTH-003 no real users or default credentials, 3 advisories")


def test_audit_table_shows_words_and_a_compliant_row_does_not_look_like_a_failing_one():
    report = _audit_report(_instance("pacs-01", **EXPOSED), _instance("pacs-02", **ADVISORIES_ONLY))
    text = _text(render.table(report))
    failing, compliant = row_of(text, "pacs-01"), row_of(text, "pacs-02")
    assert failing["findings"] == "ORTH-002 remote access without authentication"
    assert failing["status"] == "findings, 3 advisories"
    assert (compliant["findings"], compliant["status"]) == ("-", "compliant, 5 advisories")
    assert "ORTH-1" not in text, "advisories are not listed without -v"
    verbose = row_of(_text(render.table(report, verbose=True)), "pacs-02")["findings"]
    assert verbose == ("ORTH-101 HTTPS off (medium) ORTH-103 Lua through REST on (medium) ORTH-102 WebDAV on (low) "
                       "ORTH-105 called AET not checked (low) ORTH-106 HTTP errors described (info)")


def test_waived_findings_stay_named():
    instance = _instance(**EXPOSED)
    instance["findings"] = [r.as_dict() for r in findings.evaluate(instance, waivers={"ORTH-002": "lab (CHG-1)"})]
    assert words.cell(instance["findings"]) == "ORTH-002 remote access without authentication (waived)"


def test_remediation_table_and_json_carry_words():
    row = {"host": "pacs-01", "status": "not-compliant", "changes": [], "waived": {},
           "reason": "orthanc.service: " + words.summary(_instance(**EXPOSED)["findings"]),
           "audit": [{"instance": "orthanc.service", "status": "findings",
                      "findings": _instance(**EXPOSED)["findings"]}]}
    done = {"host": "pacs-02", "status": "compliant", "changes": [], "waived": {}, "reason": "",
            "audit": [{"instance": "orthanc.service", "status": "compliant",
                       "findings": _instance(**ADVISORIES_ONLY)["findings"]}]}
    report = {"inventory": "fleet.py", "dry": False, "hosts": [row, done], "exit_code": 1,
              "summary": {"not-compliant": 1, "compliant": 1}}
    text = _text(render.remediation_table(report))
    assert row_of(text, "pacs-01")["reason"] == "orthanc.service: ORTH-002 remote access without authentication, " \
                                                 "3 advisories"
    assert row_of(text, "pacs-02")["status"] == "compliant, 5 advisories" and "ORTH-105" not in text
    assert "ORTH-105 called AET not checked" in row_of(_text(render.remediation_table(report, verbose=True)),
                                                      "pacs-02")["reason"]
    (finding,) = [f for f in row["audit"][0]["findings"] if f["id"] == "ORTH-002"]
    assert {finding[k] for k in ("id", "severity", "short")} == {"ORTH-002", "critical",
                                                                  "remote access without authentication"}


def test_long_host_names_are_never_cut_at_80_columns():
    audit = _audit_report(_instance(ENGINE, **EXPOSED), _instance("pacs-01", **EXPOSED))
    remediation = {"inventory": "x", "dry": True, "exit_code": 1, "summary": {"would-change": 1},
                   "hosts": [{"host": ENGINE, "status": "would-change", "changes": ["Orthanc users"], "waived": {},
                              "reason": ""}]}
    for renderable, field, expected in ((render.table(audit), "findings",
                                         "ORTH-002 remote access without authentication"),
                                        (render.remediation_table(remediation), "would change", "Orthanc users")):
        narrow = _text(renderable, width=80)
        assert ENGINE in narrow.splitlines()[2], narrow  # whole, on its own line
        assert any(expected in line for line in narrow.splitlines()), "every cell whole too"
        assert max(len(line.rstrip()) for line in narrow.splitlines()) <= 80
        assert row_of(narrow, ENGINE)[field] == expected
        wide = _text(renderable, width=240)
        assert "┃ host" in wide and row_of(wide, ENGINE)[field] == expected, "a table where it fits"


def test_remote_is_unknown_when_the_configuration_does_not_parse():
    broken = _instance(**EXPOSED)
    broken["config"]["parse_errors"] = {"/etc/orthanc/orthanc.json": "line 3: Expecting ',' delimiter"}
    broken["config"]["effective"]["RemoteAccessAllowed"] = False  # what defaults alone would say
    row = row_of(_text(render.table(_audit_report(broken))), "pacs-01")
    assert (row["remote"], row["auth"], row["users"]) == ("?", "?", "?")


def test_catalogue_lists_every_finding_worst_first_with_how_it_is_fixed_or_why_advised():
    entries = findings.catalogue()
    assert [e["id"] for e in entries][:2] == ["ORTH-001", "ORTH-002"] and len(entries) == len(findings.CATALOGUE)
    severities = [findings.SEVERITIES.index(e["severity"]) for e in entries]
    assert severities == sorted(severities)
    webdav = next(e for e in entries if e["id"] == "ORTH-102")
    assert webdav["handling"].startswith(findings.ADVISED) and webdav["blocking"] is False
    assert "control `auth`" in next(e for e in entries if e["id"] == "ORTH-002")["handling"]
    json.dumps(entries)
    text = _text(render.catalogue_table())
    assert "ORTH-108" in text and "anonymous access answered" in text


def test_readme_findings_table_is_generated_from_the_code():
    text = README.read_text()
    start = text.index(findings.BEGIN) + len(findings.BEGIN) + 1
    end = text.index(findings.END)
    assert text[start:end] == findings.markdown_table(), "run: python -m orthanc_harden.findings --update-readme"
    for control in findings.CATALOGUE.values():
        assert f"| {control.id} | {control.severity} | {control.title} |" in text


def test_report_lines_name_what_is_wrong_one_line_each():
    report = {"instances": [_instance("pacs-01", **EXPOSED), _instance("pacs-02"),
                            {"host": "pacs-03", "instance": None, "status": "failed", "findings": [],
                             "reason": "unreachable: SSH error\n(Error reading SSH protocol banner)"}]}
    assert words.report_lines(report) == [
        "pacs-01 orthanc.service: findings: ORTH-002 remote access without authentication, 3 advisories",
        "pacs-03: failed: unreachable: SSH error (Error reading SSH protocol banner)"]


def test_findings_command_prints_the_catalogue():
    from tests.conftest import run_cli

    listed = run_cli("findings", "--json", timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == findings.catalogue()
    table = run_cli("findings", timeout=120)
    assert table.returncode == 0 and "ORTH-108" in table.stdout and "Advised only" in table.stdout
