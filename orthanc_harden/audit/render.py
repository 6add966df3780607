"""Render an audit report: a table for people, JSON for machines (same content)."""

from __future__ import annotations

import json

from rich.table import Table

from . import words
from .fitted import Fitted

STATUS_BREAK = ",\n"  # "compliant," over "5 advisories": a narrow status column that reads whole
STATUS_STYLE = {"compliant": "green", "findings": "red", "failed": "bold red", "no-orthanc": "dim"}


def _yes_no(value) -> str:
    return "?" if value is None else ("on" if value else "off")


def _names_column(grid: Table, header: str, names: list[str]) -> None:
    """Host and instance names are never cut: at least as wide as the longest one, the other columns fold (and
    where even that does not fit, Fitted prints the rows as blocks)."""
    grid.add_column(header, no_wrap=True, min_width=max([len(header)] + [len(n or "") for n in names]))


def table(report: dict, verbose: bool = False) -> Fitted:
    """One row per instance; findings in words (advisories counted in the status, listed with `verbose`)."""
    grid = Table(title=f"orthanc-harden audit of {report['inventory']}")
    rows = report["instances"]
    _names_column(grid, "host", [r["host"] for r in rows])
    _names_column(grid, "instance", [r.get("instance") for r in rows])
    for column in ("kind", "version", "remote", "auth", "users", "firewall", "findings", "status"):
        grid.add_column(column, overflow="fold")
    for row in rows:
        style = STATUS_STYLE.get(row["status"], "")
        if row["status"] in ("failed", "no-orthanc"):
            grid.add_row(row["host"], "-", "-", "-", "-", "-", "-", "-", row["reason"],
                         f"[{style}]{row['status']}[/{style}]")
            continue
        config = row["config"]["effective"]
        firewall = row["firewall"]
        fw = firewall["backend"] + ("" if firewall["active"] else " (inactive)")
        # A configuration that does not parse, or was not read on purpose, says nothing about these values.
        known = not row["config"].get("unknown") and not row["config"].get("parse_errors")
        grid.add_row(row["host"], row["instance"], row["kind"], row["version"] or "unknown",
                     _yes_no(config.get("RemoteAccessAllowed")) if known else "?",
                     _yes_no(config.get("AuthenticationEnabled")) if known else "?",
                     str(len(row["config"]["users"])) if known else "?", fw,
                     words.cell(row["findings"], verbose) or "-",
                     f"[{style}]{words.status(row['status'], row['findings'], sep=STATUS_BREAK)}[/{style}]")
    return Fitted(grid)


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


REMEDIATION_STYLE = {"changed": "yellow", "compliant": "green", "would-change": "yellow", "not-compliant": "red",
                     "failed": "bold red"}


def remediation_table(report: dict, verbose: bool = False) -> Fitted:
    """One row per host: what changed (or would), what is waived, and the status with its reason (findings in
    words; advisories counted in the status, listed with `verbose`)."""
    verb = "plan" if report["dry"] else "remediation"
    grid = Table(title=f"orthanc-harden {verb} of {report['inventory']}")
    _names_column(grid, "host", [r["host"] for r in report["hosts"]])
    for column in ("status", "changes" if not report["dry"] else "would change", "waived", "reason"):
        grid.add_column(column, overflow="fold")
    for row in report["hosts"]:
        style = REMEDIATION_STYLE.get(row["status"], "")
        waived = "; ".join(f"{control} ({reason})" for control, reason in row["waived"].items())
        found = [f for audited in row.get("audit", []) for f in audited["findings"]]
        reason = row["reason"]
        if verbose:
            listed = [f"{a['instance']}: {', '.join(words.named(f) for f in words.advisories(a['findings']))}"
                      for a in row.get("audit", []) if words.advisories(a["findings"])]
            reason = "\n".join(filter(None, [reason] + listed))
        grid.add_row(row["host"], f"[{style}]{words.status(row['status'], found, sep=STATUS_BREAK)}[/{style}]",
                     "\n".join(row["changes"]) or "-", waived or "-", reason or "-")
    counts = ", ".join(f"{count} {status}" for status, count in report["summary"].items() if count)
    grid.caption = f"{counts}; exit status {report['exit_code']}"
    return Fitted(grid)


def catalogue_table() -> Fitted:
    """`orthanc-harden findings`: every finding, worst first, with how it is fixed or why it is only advised."""
    from ..findings import catalogue

    grid = Table(title="orthanc-harden findings")
    grid.add_column("ID", no_wrap=True)
    for column in ("severity", "finding", "fixed by, or why only advised"):
        grid.add_column(column, overflow="fold")
    for entry in catalogue():
        grid.add_row(entry["id"], entry["severity"], f"{entry['title']}\n[dim]{entry['short']}[/dim]",
                     entry["handling"])
    grid.caption = "critical and high make a host non-compliant; medium and lower are advisories"
    return Fitted(grid)
