"""What each control concluded on each host during this process, for reports (remediate, deploy summaries).

Operations run twice in pyinfra (plan, then execute); the execute-time record replaces the plan-time one.
"""

from __future__ import annotations

OUTCOMES: dict[str, dict[str, dict]] = {}


def record(host_name: str, control: str, status: str, message: str = "") -> None:
    """status: "ok", "changed", "not-compliant" (nothing the tool can do, e.g. no fixed package), "failed"."""
    OUTCOMES.setdefault(host_name, {})[control] = {"status": status, "message": message}


def for_host(host_name: str) -> dict[str, dict]:
    return dict(OUTCOMES.get(host_name, {}))


def clear() -> None:
    OUTCOMES.clear()
