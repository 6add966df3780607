"""Orthanc restarts that one operation leaves to a later one on the same host, so a run restarts Orthanc once.

``harden`` upgrades without restarting when authentication follows; ``auth.authentication`` then restarts and
health-gates once, on the new binary with the new configuration. Written only while commands execute (a plan
never defers anything) and emptied by the restart. Kept in the run's record (``run_record``).

An upgrade defers only to an authentication operation added after it on the same host for the same unit
(``will_restart``, recorded when that operation is called): a deploy calling ``upgrade.package(restart=False)``
alone gets its restart from the upgrade itself, never an Orthanc left on the replaced binary.
"""

from __future__ import annotations

from . import run_record


def _pending() -> dict[str, set[str]]:
    return run_record.current().pending_restarts


def will_restart(host_name: str, unit: str, op_hash: str) -> None:
    """The operation `op_hash` (authentication) restarts `unit` on this host when it executes."""
    run_record.current().restart_takers.setdefault(host_name, {}).setdefault(unit, []).append(op_hash)


def taken_after(host, unit: str) -> bool:
    """An operation added after the one executing now on `host` restarts `unit` (see ``will_restart``)."""
    takers = run_record.current().restart_takers.get(host.name, {}).get(unit, [])
    order = list(getattr(host, "op_hash_order", []))
    now = getattr(host, "current_op_hash", None)
    if now not in order:
        return False
    return any(taker in order and order.index(taker) > order.index(now) for taker in takers)


def defer(host_name: str, units: list[str]) -> None:
    _pending().setdefault(host_name, set()).update(units)


def pending(host_name: str, unit: str) -> bool:
    return unit in _pending().get(host_name, set())


def done(host_name: str, unit: str) -> None:
    _pending().get(host_name, set()).discard(unit)


def clear() -> None:
    record = run_record.current()
    record.pending_restarts.clear()
    record.restart_takers.clear()
