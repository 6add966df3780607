"""Findings in words, for tables and one-line summaries.

A reader of a table must not need the catalogue: each failing finding that blocks compliance (critical, high) is
shown by ID and short title, worst first. Advisories (medium and lower) are counted apart, so a compliant row does
not look like a failing one, and listed only when asked (`-v`). Waived findings are always named: never hidden.
Input: the finding dictionaries of an audit row (``findings.Result.as_dict``).
"""

from __future__ import annotations

from ..findings import BLOCKING, CATALOGUE, SEVERITIES


def _complete(finding: dict) -> dict:
    """A finding dictionary with its catalogue words (reports written before they carried them, bare IDs)."""
    if isinstance(finding, str):
        finding = {"id": finding, "status": "fail"}
    control = CATALOGUE.get(finding["id"])
    words = {"severity": control.severity, "title": control.title, "short": control.short} if control else {}
    return {**words, **finding}


def _worst_first(found: list[dict]) -> list[dict]:
    return sorted(found, key=lambda f: (SEVERITIES.index(f.get("severity", "info")), f["id"]))


def blocking(found: list) -> list[dict]:
    """Failing findings that make an instance non-compliant, worst first."""
    return _worst_first([f for f in map(_complete, found) if f["status"] == "fail" and f.get("severity") in BLOCKING])


def advisories(found: list) -> list[dict]:
    """Failing findings of medium and lower severity, worst first."""
    return _worst_first([f for f in map(_complete, found)
                         if f["status"] == "fail" and f.get("severity") not in BLOCKING])


def waived(found: list) -> list[dict]:
    return _worst_first([f for f in map(_complete, found) if f["status"] == "waived"])


def named(finding: dict) -> str:
    """``ORTH-002 remote access without authentication``."""
    return f"{finding['id']} {finding.get('short') or finding.get('title') or ''}".rstrip()


def advisory_count(found: list) -> str:
    count = len(advisories(found))
    return f"{count} advisor{'y' if count == 1 else 'ies'}" if count else ""


def status(status: str, found: list, sep: str = ", ") -> str:
    """``compliant, 5 advisories``: the row's status with its advisories counted apart."""
    count = advisory_count(found)
    return f"{status}{sep}{count}" if count else status


def cell(found: list, verbose: bool = False) -> str:
    """The findings column: blocking findings in words, one a line, then the waived ones; advisories with -v."""
    lines = [named(f) for f in blocking(found)]
    lines += [f"{named(f)} (waived)" for f in waived(found)]
    if verbose:
        lines += [f"{named(f)} ({f.get('severity')})" for f in advisories(found)]
    return "\n".join(lines)


def summary(found: list) -> str:
    """One line for a reason column or a log: the blocking findings in words, the waived ones, then the advisory
    count."""
    parts = [named(f) for f in blocking(found)] + [f"{named(f)} (waived)" for f in waived(found)]
    count = advisory_count(found)
    return ", ".join(parts + ([count] if count else []))


def report_lines(report: dict) -> list[str]:
    """One line per instance (audit) or host (remediate) that is not plainly compliant: its name, status and
    findings in words or reason; for logs such as the scheduled run's."""
    lines = []
    for row in report.get("instances", []):
        if row["status"] in ("failed", "findings"):
            name = f"{row['host']} {row['instance']}" if row.get("instance") else row["host"]
            what = summary(row["findings"]) if row["status"] == "findings" else row["reason"]
            lines.append(" ".join(f"{name}: {row['status']}: {what}".split()))
    for row in report.get("hosts", []):
        if row["status"] in ("failed", "not-compliant", "would-change"):
            lines.append(" ".join(f"{row['host']}: {row['status']}: {row['reason'] or 'see the report'}".split()))
    return lines
