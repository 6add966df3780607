"""What a dry run (``remediate --dry``) would change on each host, recorded while pyinfra plans the operations:
the unified diff of each configuration file (secrets masked before they get here), the firewall rules added and
removed, package versions and container images and settings, each from and to.

pyinfra runs an operation's body at plan time only up to its first command, so operations record here before
they yield one. Nothing here ever holds a password: file diffs come masked (``remote.orthanc_config.masked_diff``
on the host, or the same function on the control node for a container's files), environment values are masked.
Kept in the run's record (``run_record``), as is whether the run is a dry one.
"""

from __future__ import annotations

from contextlib import contextmanager

from . import run_record

KINDS = ("files", "firewall", "packages", "containers")


def dry() -> bool:
    """A dry run is planning (``remediate --dry``): operations may then read what only the plan needs (what the
    repositories offer now), which a real run learns by doing it."""
    return run_record.current().dry


@contextmanager
def dry_run(on: bool = True):
    record_ = run_record.current()
    previous, record_.dry = record_.dry, on
    try:
        yield
    finally:
        record_.dry = previous


def record(host_name: str, kind: str, key: str, entry: dict) -> None:
    """Keep `entry` for this host; the same `key` again replaces it (an operation may be planned twice)."""
    run_record.current().plans.setdefault(host_name, {}).setdefault(kind, {})[key] = entry


def for_host(host_name: str) -> dict[str, list[dict]]:
    found = run_record.current().plans.get(host_name, {})
    return {kind: list(found[kind].values()) for kind in KINDS if found.get(kind)}


def clear() -> None:
    run_record.current().plans.clear()


def show_diff(host, path: str, diff: str) -> None:
    """Record a file's (masked) diff, and print it as pyinfra's own ``--diff`` prints a file's."""
    from pyinfra import logger
    from pyinfra.context import ctx_state

    record(host.name, "files", path, {"path": path, "diff": diff})
    state = ctx_state.get() if ctx_state.isset() else None
    if state is not None and state.config.DIFF and not state.is_executing:
        host.log(f"Will change {path}", logger.info)
        for line in diff.splitlines():
            logger.info("  %s", line)


def render(report: dict) -> str:
    """The plan of every host of a dry run as text: what a sysadmin coming from ``ansible --check --diff``
    expects to read below the table."""
    blocks = []
    for row in report["hosts"]:
        body = _lines(row.get("plan") or {})
        if body:
            blocks.append("\n".join([f"== {row['host']}: what would change (nothing was changed) =="] + body))
    return "\n\n".join(blocks)


def _lines(plan: dict[str, list[dict]]) -> list[str]:
    out = []
    for entry in plan.get("packages", []):
        to = entry["to"] or "nothing (no version reaches the floor)"
        out.append(f"package {entry['name']}: {entry['from']} -> {to}" + (f" ({entry['note']})" if entry.get("note")
                                                                          else ""))
    for entry in plan.get("containers", []):
        out.append(f"container {entry['container']}:")
        out += [f"  {name}: {change['from']} -> {change['to']}" for name, change in entry["settings"].items()]
    for entry in plan.get("firewall", []):
        out.append(f"firewall ({entry['backend']}):")
        out += [f"  + {rule}" for rule in entry.get("add", [])]
        out += [f"  - {rule}" for rule in entry.get("remove", [])]
        out += [f"  note: {note}" for note in entry.get("notes", [])]
    for entry in plan.get("files", []):
        out += entry["diff"].rstrip("\n").splitlines()
    return out
