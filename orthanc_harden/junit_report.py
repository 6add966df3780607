"""An audit or remediate report as JUnit XML, so CI systems and dashboards that read JUnit show the fleet's state.

One test case per host and Orthanc instance (class name: the host; name: the instance, or the host when there is
none). A non-compliant instance is a ``failure`` carrying its blocking findings in words; a host that could not be
audited or remediated (unreachable, bad data, failed run) is an ``error`` with its one-line reason; advisories are
listed in the suite's ``system-out``. The format is the strict Ant/Surefire one (``testsuites`` of ``testsuite``
elements with their required attributes, ``properties``, ``system-out`` and ``system-err``), the common ground of
Jenkins, GitLab and the GitHub reporters. Only what the table shows goes in: never a traceback, never a password.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from .audit import words
from .findings import CATALOGUE, handling


def _finding_lines(found: list) -> str:
    lines = []
    for finding in words.blocking(found):
        lines.append(f"{finding['id']} ({finding['severity']}) {finding['title']}: {finding.get('detail') or ''}"
                     .rstrip(": "))
        control = CATALOGUE.get(finding["id"])
        if control:
            lines.append(f"  fix: {handling(control)}")
    return "\n".join(lines)


def _cases(report: dict) -> list[dict]:
    """One dictionary per case (classname, name, outcome, type, message, text, advisories), from an audit report
    (``instances``) or a remediate report (``hosts``, with each host's audited instances)."""
    cases = []
    for row in report.get("instances", []):  # audit
        case = {"classname": row["host"], "name": row.get("instance") or row["host"], "advisories": []}
        if row["status"] == "failed":
            case.update(outcome="error", type="unreachable-or-failed", message=row["reason"], text=row["reason"])
        elif row["status"] == "findings":
            case.update(outcome="failure", type=words.blocking(row["findings"])[0]["severity"],
                        message=words.summary(row["findings"]), text=_finding_lines(row["findings"]))
        else:
            case["outcome"] = "pass"
        case["advisories"] = words.advisories(row.get("findings", []))
        cases.append(case)
    for row in report.get("hosts", []):  # remediate
        audited = row.get("audit") or [None]
        # A host left not compliant with no instance's finding to show (no fixed package, a firewall it may not
        # touch...) fails each of its cases with the host's reason.
        host_level = not any(words.blocking(a["findings"]) for a in audited if a)
        for instance in audited:
            name = instance["instance"] if instance else row["host"]
            found = instance["findings"] if instance else []
            case = {"classname": row["host"], "name": name or row["host"], "advisories": words.advisories(found)}
            if row["status"] == "failed":
                case.update(outcome="error", type="failed", message=row["reason"], text=row["reason"])
            elif words.blocking(found):
                case.update(outcome="failure", type=words.blocking(found)[0]["severity"],
                            message=words.summary(found), text=_finding_lines(found))
            elif row["status"] == "would-change" or (row["status"] == "not-compliant" and host_level):
                changes = "\n".join(row["changes"])
                case.update(outcome="failure", type=row["status"], message=row["reason"] or row["status"],
                            text="\n".join(filter(None, [row["reason"], changes])))
            else:
                case["outcome"] = "pass"
            cases.append(case)
    return cases


def to_xml(report: dict) -> str:
    """The report as a JUnit XML document (text)."""
    cases = _cases(report)
    started = datetime.fromisoformat(report["started"])
    suite_name = f"orthanc-harden {report['command']}" + (" --dry" if report.get("dry") else "")
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", {
        "name": suite_name, "package": "orthanc-harden", "id": "0",
        # The schema's timestamp carries no time zone: the run's start in UTC, as the JSON report says.
        "timestamp": started.strftime("%Y-%m-%dT%H:%M:%S"),
        "hostname": report.get("control_node") or "localhost",
        "tests": str(len(cases)), "failures": str(sum(c["outcome"] == "failure" for c in cases)),
        "errors": str(sum(c["outcome"] == "error" for c in cases)), "skipped": "0",
        "time": f"{float(report.get('duration_s') or 0):.2f}",
    })
    properties = ET.SubElement(suite, "properties")
    for name in ("tool", "version", "command", "inventory", "started", "exit_code"):
        ET.SubElement(properties, "property", {"name": name, "value": str(report.get(name, ""))})
    advisories = []
    for case in cases:
        element = ET.SubElement(suite, "testcase", {"classname": case["classname"], "name": case["name"],
                                                     "time": "0"})
        if case["outcome"] in ("failure", "error"):
            outcome = ET.SubElement(element, case["outcome"], {"message": case["message"], "type": case["type"]})
            outcome.text = case["text"]
        if case["advisories"]:
            advisories.append(f"{case['classname']} {case['name']}: "
                              + ", ".join(f"{words.named(f)} ({f['severity']})" for f in case["advisories"]))
    ET.SubElement(suite, "system-out").text = "\n".join(advisories)
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
