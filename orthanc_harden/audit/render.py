"""Render an audit report: a table for people, JSON for machines (same content)."""

from __future__ import annotations

import json

from rich.table import Table

STATUS_STYLE = {"compliant": "green", "findings": "red", "failed": "bold red", "no-orthanc": "dim"}


def _yes_no(value) -> str:
    return "?" if value is None else ("on" if value else "off")


def table(report: dict) -> Table:
    grid = Table(title=f"orthanc-harden audit of {report['inventory']}")
    for column in ("host", "instance", "kind", "version", "remote", "auth", "users", "firewall", "findings",
                   "status"):
        grid.add_column(column, overflow="fold")
    for row in report["instances"]:
        style = STATUS_STYLE.get(row["status"], "")
        if row["status"] in ("failed", "no-orthanc"):
            grid.add_row(row["host"], "-", "-", "-", "-", "-", "-", "-", row["reason"],
                         f"[{style}]{row['status']}[/{style}]")
            continue
        config = row["config"]["effective"]
        firewall = row["firewall"]
        fw = firewall["backend"] + ("" if firewall["active"] else " (inactive)")
        ids = ", ".join(f["id"] + (" (waived)" if f["status"] == "waived" else "") for f in row["findings"])
        known = not row["config"].get("unknown")
        grid.add_row(row["host"], row["instance"], row["kind"], row["version"] or "unknown",
                     _yes_no(config.get("RemoteAccessAllowed")) if known else "?",
                     _yes_no(config.get("AuthenticationEnabled")) if known else "?",
                     str(len(row["config"]["users"])), fw, ids or "-", f"[{style}]{row['status']}[/{style}]")
    return grid


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


REMEDIATION_STYLE = {"changed": "yellow", "compliant": "green", "would-change": "yellow", "not-compliant": "red",
                     "failed": "bold red"}


def remediation_table(report: dict) -> Table:
    """One row per host: what changed (or would), what is waived, and the status with its reason."""
    verb = "plan" if report["dry"] else "remediation"
    grid = Table(title=f"orthanc-harden {verb} of {report['inventory']}")
    for column in ("host", "status", "changes" if not report["dry"] else "would change", "waived", "reason"):
        grid.add_column(column, overflow="fold")
    for row in report["hosts"]:
        style = REMEDIATION_STYLE.get(row["status"], "")
        waived = "; ".join(f"{control} ({reason})" for control, reason in row["waived"].items())
        grid.add_row(row["host"], f"[{style}]{row['status']}[/{style}]", "\n".join(row["changes"]) or "-",
                     waived or "-", row["reason"] or "-")
    counts = ", ".join(f"{count} {status}" for status, count in report["summary"].items() if count)
    grid.caption = f"{counts}; exit status {report['exit_code']}"
    return grid
