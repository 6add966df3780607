"""Plans a remediation read with each host's state before planning (``OrthancHostCheck``), kept for this run.

``auth.authentication`` and ``firewall.restrict`` use one instead of asking the host only for their very request
(the same request JSON, passwords included, and the same privilege arguments: compared as a digest) and only
while no operation of this run has changed the host yet; otherwise, and when nothing was read ahead (an operation
in a user's own deploy), they ask the host as they do alone. Kept in the run's record (``run_record``).
"""

from __future__ import annotations

import copy
import hashlib
import json

from . import run_record

# Who the program runs as decides what it may read: a plan made as another user answers another question.
WHO = ("_sudo", "_sudo_user", "_su_user", "_doas", "_doas_user", "_dzdo", "_dzdo_user")


def digest(control: str, request: str | dict, arguments: dict | None) -> str:
    body = json.loads(request) if isinstance(request, str) else request
    who = [(arguments or {}).get(key) for key in WHO]
    return hashlib.sha256(json.dumps([control, body, who], sort_keys=True).encode()).hexdigest()


def record(host_name: str, control: str, request: str | dict, arguments: dict | None, plan: dict,
           state=None) -> None:
    """Keep `plan` for this host and request in the record of `state` (default: the run under way)."""
    found = run_record.of(state).prechecked if state is not None else run_record.current().prechecked
    found.setdefault(host_name, {})[digest(control, request, arguments)] = plan


def plan_for(host, control: str, request: str) -> dict | None:
    """The plan read ahead for this host, control and request, as the operation's own connector arguments would
    have read it; None when there is none or something already changed the host in this run."""
    found = run_record.current().prechecked.get(host.name, {}).get(
        digest(control, request, getattr(host, "current_op_global_arguments", None)))
    if found is None or _changed_in_this_run(host):
        return None
    return copy.deepcopy(found)


def _changed_in_this_run(host) -> bool:
    from pyinfra.context import ctx_state

    if not ctx_state.isset():
        return False
    for data in ctx_state.get().ops.get(host, {}).values():
        meta = data.operation_meta
        if meta.is_complete() and meta.did_change():
            return True
    return False


def clear() -> None:
    run_record.current().prechecked.clear()
