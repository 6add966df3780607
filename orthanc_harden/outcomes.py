"""What each control concluded on each host during this process, for reports (remediate, deploy summaries).

Operations run twice in pyinfra (plan, then execute); the execute-time record replaces the plan-time one.
"""

from __future__ import annotations

OUTCOMES: dict[str, dict[str, dict]] = {}


def record(host_name: str, control: str, status: str, message: str = "", traceback: str | None = None) -> None:
    """status: "ok", "changed", "not-compliant" (nothing the tool can do, e.g. no fixed package), "failed".
    `traceback`: an unexpected error's, for the JSON report; kept when the same failure is recorded again."""
    entry = {"status": status, "message": message}
    previous = OUTCOMES.get(host_name, {}).get(control, {})
    traceback = traceback or (previous.get("traceback") if previous.get("message") == message else None)
    if traceback:
        entry["traceback"] = traceback
    OUTCOMES.setdefault(host_name, {})[control] = entry


def for_host(host_name: str) -> dict[str, dict]:
    return dict(OUTCOMES.get(host_name, {}))


def clear() -> None:
    OUTCOMES.clear()
