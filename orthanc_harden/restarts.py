"""Orthanc restarts that one operation leaves to a later one on the same host, so a run restarts Orthanc once.

``harden`` upgrades without restarting when authentication follows; ``auth.authentication`` then restarts and
health-gates once, on the new binary with the new configuration. Written only while commands execute (a plan
never defers anything) and emptied by the restart.
"""

from __future__ import annotations

PENDING: dict[str, set[str]] = {}


def defer(host_name: str, units: list[str]) -> None:
    PENDING.setdefault(host_name, set()).update(units)


def pending(host_name: str, unit: str) -> bool:
    return unit in PENDING.get(host_name, set())


def done(host_name: str, unit: str) -> None:
    PENDING.get(host_name, set()).discard(unit)


def clear() -> None:
    PENDING.clear()
