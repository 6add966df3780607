"""`orthanc-harden report merge`: one table and one exit status from the JSON reports of several runs.

Runners that each took a shard (`--shard I/N`) or a site (`--limit`) write a report each; the merge answers the
question the fleet's owner asks, which servers are still exposed, as one run would have. It refuses reports that
cannot be one answer (another command, a dry plan with a real run; unless told, another inventory or tool
version), names hosts that two reports cover and hosts of a declared shard set that no report covers (both exit
2: the answer is not one run's), and keeps every report's run metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from .shard import shard_of

EXIT_MERGE_REFUSED = 2
# Keys of a report that hold its rows or are computed from them; the rest is the run's metadata, kept as it is.
_ROW_KEYS = {"audit": "instances", "remediate": "hosts"}
_COMPUTED = {"exit_code", "summary", "waived", "instances", "hosts"}


class MergeError(Exception):
    """Reports that cannot be merged: one line saying which and why."""


def load(paths: list[str]) -> list[tuple[str, dict]]:
    """Each report as (path, parsed JSON); MergeError for one that is missing or is not an orthanc-harden report."""
    found = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as err:
            raise MergeError(f"{path}: cannot read: {err.strerror}") from None
        except ValueError as err:
            raise MergeError(f"{path}: not JSON: {err}") from None
        if not isinstance(data, dict) or data.get("tool") != "orthanc-harden" or data.get("command") not in _ROW_KEYS:
            raise MergeError(f"{path}: not a JSON report of orthanc-harden audit or remediate")
        found.append((path, data))
    if not found:
        raise MergeError("no report given")
    return found


def _inventory_identity(report: dict) -> str:
    # Runners mount one inventory at different paths: its content's digest is the identity, the path only for
    # host lists and reports written before the digest was recorded.
    return report.get("inventory_sha256") or f"path {report.get('inventory')}"


def _refusals(reports: list[tuple[str, dict]], allow_mixed: bool) -> None:
    first_path, first = reports[0]
    for path, report in reports[1:]:
        if report["command"] != first["command"]:
            raise MergeError(f"{path} is a {report['command']} report and {first_path} a {first['command']} report: "
                             "they cannot be one table")
        if bool(report.get("dry")) != bool(first.get("dry")):
            raise MergeError(f"{path} and {first_path}: one is a dry plan, the other a real run")
        if allow_mixed:
            continue
        if report.get("version") != first.get("version"):
            raise MergeError(f"{path} was written by orthanc-harden {report.get('version')} and {first_path} by "
                             f"{first.get('version')} (--allow-mixed merges them anyway)")
        if _inventory_identity(report) != _inventory_identity(first):
            raise MergeError(f"{path} and {first_path} are runs of different inventories ({report.get('inventory')}, "
                             f"{first.get('inventory')}; --allow-mixed merges them anyway)")


def _hosts_of(report: dict) -> list[str]:
    return sorted({row["host"] for row in report[_ROW_KEYS[report["command"]]]})


def _missing_row(command: str, host: str, reason: str) -> dict:
    if command == "audit":
        return {"host": host, "instance": None, "kind": None, "status": "failed", "reason": reason, "findings": [],
                "compliant": False}
    return {"host": host, "status": "failed", "reason": reason, "changes": [], "waived": {}, "audit": []}


def _shard_sets(reports: list[tuple[str, dict]]) -> dict[tuple[str, int], list[int]]:
    """Sharded reports grouped by the selection they split and their shard count: each group is a shard set."""
    sets: dict[tuple[str, int], list[int]] = {}
    for number, (_, report) in enumerate(reports):
        shard = report.get("shard")
        if shard and report.get("selection_sha256"):
            sets.setdefault((report["selection_sha256"], shard["count"]), []).append(number)
    return sets


def merge(reports: list[tuple[str, dict]], allow_mixed: bool = False) -> dict:
    """The merged report, shaped as the reports' own command's report (the same table renders it), with `runs`
    (each report's metadata and file) and `problems` (duplicated and missing hosts)."""
    from . import audit
    from .remediate import exit_code as remediate_exit, summary as remediate_summary

    _refusals(reports, allow_mixed)
    command = reports[0][1]["command"]
    key = _ROW_KEYS[command]
    rows, problems, runs = [], [], []
    covered: dict[str, list[str]] = {}
    for number, (path, report) in enumerate(reports):
        runs.append({"file": path, **{k: v for k, v in report.items() if k not in _COMPUTED}})
        rows.extend({**row, "run": number} for row in report[key])
        for host in _hosts_of(report):
            covered.setdefault(host, []).append(path)
    for host, paths in sorted(covered.items()):
        if len(paths) > 1:
            problems.append(f"{host} appears in {len(paths)} reports: {', '.join(paths)}")
    for (_, count), members in sorted(_shard_sets(reports).items()):
        present = {reports[n][1]["shard"]["index"] for n in members}
        expected = reports[members[0]][1].get("selected_hosts") or []
        keys = reports[members[0]][1].get("shard_keys") or {}
        for host in sorted(set(expected) - set(covered)):
            index = shard_of(keys.get(host, host), count)
            why = (f"shard {index}/{count} has no report" if index not in present
                   else f"the report of shard {index}/{count} does not cover it")
            problems.append(f"{host} is in no report: {why}")
            rows.append(_missing_row(command, host, f"no report covers this host: {why}"))
    if command == "audit":
        code, summary = audit.exit_code(rows), audit.summary(rows)
    else:
        code, summary = remediate_exit(rows), remediate_summary(rows)
    if problems:
        code = max(code, EXIT_MERGE_REFUSED)
    inventories = sorted({str(r.get("inventory")) for _, r in reports})
    merged = {"tool": "orthanc-harden", "version": __version__, "command": command, "merged": True,
              "inventory": ", ".join(inventories), "exit_code": code, "summary": summary, "problems": problems,
              "runs": runs, key: rows}
    if command == "remediate":
        merged["dry"] = bool(reports[0][1].get("dry"))
        merged["waived"] = sum(1 for r in rows if r["waived"])
    return merged


def _merge_command(args, out, err) -> int:
    from ..audit import render
    from ..cli import _write_json

    try:
        merged = merge(load(args.reports), allow_mixed=args.allow_mixed)
    except MergeError as error:
        err.print(f"orthanc-harden report merge: error: {error}", markup=False, soft_wrap=True)
        return EXIT_MERGE_REFUSED
    out.print(render.table(merged) if merged["command"] == "audit" else render.remediation_table(merged))
    for problem in merged["problems"]:
        err.print(f"orthanc-harden report merge: {problem}", markup=False, soft_wrap=True)
    _write_json(merged, args.json)
    return merged["exit_code"]


def add_command(commands, out, err) -> None:
    """`report merge` in the command line's subcommands."""
    report = commands.add_parser("report", help="work with JSON reports")
    actions = report.add_subparsers(dest="report_command", required=True)
    merge_cmd = actions.add_parser("merge", help="one table and one exit status (as the runs') from the JSON "
                                                 "reports of several runs, such as the shards of one fleet")
    merge_cmd.add_argument("reports", nargs="+", metavar="REPORT.json", help="JSON reports of audit or remediate")
    merge_cmd.add_argument("--json", metavar="FILE", help="also write the merged report as JSON ('-' for stdout)")
    merge_cmd.add_argument("--allow-mixed", action="store_true",
                           help="merge reports of different inventories or tool versions")
    merge_cmd.set_defaults(handler=lambda args: _merge_command(args, out, err))
