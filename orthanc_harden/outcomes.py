"""What each control concluded on each host during this run, for reports (remediate, deploy summaries).

Operations run twice in pyinfra (plan, then execute); the execute-time record replaces the plan-time one. Kept in
the run's record (``run_record``): another pyinfra run in the same process has its own.
"""

from __future__ import annotations

from . import run_record
from .statuses import Outcome


def _outcomes() -> dict[str, dict[str, dict]]:
    return run_record.current().outcomes


def record(host_name: str, control: str, status: str, message: str = "", traceback: str | None = None) -> None:
    """status: an ``Outcome`` or its word ("ok", "changed", "not-compliant", "failed", "waived").
    `traceback`: an unexpected error's, for the JSON report; kept when the same failure is recorded again."""
    entry = {"status": Outcome(status), "message": message}
    found = _outcomes()
    previous = found.get(host_name, {}).get(control, {})
    traceback = traceback or (previous.get("traceback") if previous.get("message") == message else None)
    if traceback:
        entry["traceback"] = traceback
    found.setdefault(host_name, {})[control] = entry


def for_host(host_name: str) -> dict[str, dict]:
    return dict(_outcomes().get(host_name, {}))


def clear() -> None:
    _outcomes().clear()
