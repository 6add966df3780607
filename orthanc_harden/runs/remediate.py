"""Remediate an inventory: run the harden deploy on every host, audit the result, report one row per host.

Compliance is measured, not assumed: after the run every host that did not fail is audited again (the same
read-only audit as `orthanc-harden audit`), so a host the deploy cannot fix yet (an Orthanc container, a firewall
it may not touch) shows up as not compliant with its findings.
"""

from __future__ import annotations

import logging
import re
import time
from contextlib import contextmanager
from typing import Callable

from .. import outcomes, planned, settings
from ..ansible_inventory import REFUSED
from ..audit import words
from ..operations.isolation import details, one_line
from ..statuses import HostStatus, InstanceStatus, Outcome
from . import audit
from .shard import Shard

EXIT_COMPLIANT, EXIT_NOT_COMPLIANT, EXIT_FAILED = 0, 1, 2
STATUSES = tuple(HostStatus)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _PyinfraLines(logging.Handler):
    """Keeps pyinfra's warnings and errors, per host, to explain a failure no operation of ours recorded."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(ANSI.sub("", record.getMessage()).strip())

    def last_for(self, host_name: str) -> str | None:
        prefix = f"[{host_name}]"
        mine = [line[len(prefix):].strip() for line in self.lines if line.startswith(prefix)]
        mine = [line for line in mine if line and not line.startswith("Error: executed")]
        return mine[-1] if mine else None


def _callbacks(on_op: Callable[[str], None] | None, lines: _PyinfraLines | None = None):
    from pyinfra.api import BaseStateCallback

    class Events(BaseStateCallback):
        @staticmethod
        def operation_start(state, op_hash):
            if on_op:
                on_op(", ".join(sorted(state.get_op_meta(op_hash).names)))

        @staticmethod
        def operation_host_error(state, host, op_hash, retry_count=0, max_retries=0):
            # Our own operations record why they fail (and compliance failures are "not-compliant"); this
            # covers the rest, such as a connection lost in the middle of the run.
            found = outcomes.for_host(host.name)
            if "compliance" not in found and Outcome.FAILED not in {o["status"] for o in found.values()}:
                name = ", ".join(sorted(state.get_op_meta(op_hash).names))
                cause = lines.last_for(host.name) if lines else None
                outcomes.record(host.name, "run", Outcome.FAILED, f"operation '{name}' failed" + (f": {cause}" if cause
                                                                                          else ""))

    return Events()


def _connect(state, hosts, parallel: int) -> list:
    """Connect in parallel; an unreachable host fails with its cause and the others go on."""
    from gevent.pool import Pool
    from pyinfra.api.exceptions import ConnectError, PyinfraError

    def one(host):
        refused = host.data.get(REFUSED)
        if refused:  # an Ansible host this tool would reach differently from Ansible is never contacted
            outcomes.record(host.name, "settings", "failed", f"host data: {refused}")
            return None
        try:
            host.connect(raise_exceptions=True, show_errors=False)
        except (ConnectError, PyinfraError, OSError) as err:
            outcomes.record(host.name, "connect", "failed", f"unreachable: {err}")
            return None
        except Exception as err:  # noqa: BLE001 - one host's problem never stops the others
            outcomes.record(host.name, "connect", "failed", f"unreachable: {one_line(err)}", traceback=details(err))
            return None
        return host

    connected = [h for h in Pool(max(1, parallel)).imap(one, hosts) if h is not None]
    for host in connected:
        state.activate_host(host)
    return connected


def _host_states(hosts, parallel: int) -> dict:
    """Every package host's Orthanc state, read at once before the plan, with the authentication and firewall
    plans for it (``host_check``). pyinfra prepares hosts one after the other, so reading it there puts one round
    trip per host end to end. A host whose read fails is left out and read again by the deploy, which reports the
    error with the host's name."""
    from gevent.pool import Pool

    from . import host_check

    package_hosts = [h for h in hosts if not settings.validate(h.data)
                     and not settings.get(h.data, "orthanc_harden_docker_url")]
    # Before the pool: the store is read once per reference, on the control node, as the deploy reads it.
    requests = {h: host_check.wanted(h.data) for h in package_hosts}

    def one(host):
        try:
            return host, host_check.read(host, requests[host])
        except Exception:  # noqa: BLE001 - read again by the deploy, which fails this host alone with the cause
            return host, None

    return {h: found for h, found in Pool(max(1, parallel)).imap(one, package_hosts) if found is not None}


def _unchanged(state, host) -> bool:
    """True when every operation ran on this host without a command: what was read before the run still holds."""
    metas = [data.operation_meta for data in state.ops.get(host, {}).values()]
    return all(meta.is_complete() and not meta.did_change() for meta in metas)


class _CallSite(list):
    """A host's loop position (``host.loop``) that also names the lines of code calling each operation."""

    def __init__(self, state, within):
        super().__init__(within)
        self._state = state

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        from pyinfra.api.util import get_operation_order_from_stack

        yield from list(super().__iter__())
        yield from get_operation_order_from_stack(self._state)


@contextmanager
def keyed_by_call_site(state, host):
    """Plan this host's operations identified by their call site, as the pyinfra CLI does, for this run only.

    pyinfra's API mode (what `add_deploy` uses) numbers each host's operations 1, 2, 3...: in a mixed fleet an
    engine host's third operation and a package host's third are different operations under one hash, which
    mixes their names (the dry plan then misses changes) and refuses differing `_continue_on_error` values.
    pyinfra 3.10 adds the host's loop position to that number: ours carries the call site, so only this run's
    hosts are keyed differently (flipping `pyinfra.is_cli`, as the CLI does, would change every pyinfra run in
    the process). Operations called at the same place in the same order still share one hash across hosts.
    """
    previous = host.loop_position
    host.loop_position = _CallSite(state, previous)
    try:
        yield
    finally:
        host.loop_position = previous


def _plan(state, host) -> list[str]:
    """Names of the operations that would change this host (dry run)."""
    from pyinfra.context import ctx_host, ctx_state

    names = []
    with ctx_state.use(state), ctx_host.use(host):
        for op_hash in state.get_op_order():
            data = state.ops[host].get(op_hash)
            # verdict.compliant, which fails a non-compliant host on purpose, changes nothing in a dry plan
            if data is None:
                continue
            if data.operation_meta.will_change:
                names.append(", ".join(sorted(n.split(" | ")[-1] for n in state.get_op_meta(op_hash).names)))
    return names


def _row(host, failed: bool, pyinfra_lines: _PyinfraLines, dry: bool, plan: list[str],
         host_state: dict | None = None, docker_user: list | None = None) -> dict:
    found = outcomes.for_host(host.name)
    changes = [f"{control}: {o['message']}" for control, o in found.items() if o["status"] == Outcome.CHANGED]
    row = {"host": host.name, "status": HostStatus.COMPLIANT, "reason": "", "changes": changes,
           "waived": settings.waived_controls(host.data), "audit": []}
    failures = [o["message"] for o in found.values() if o["status"] == Outcome.FAILED]
    tracebacks = [o["traceback"] for o in found.values() if o.get("traceback")]
    if tracebacks:  # unexpected errors: the JSON report (and -v) get the details, the table one line
        row["traceback"] = "\n".join(tracebacks)
    if failures or (failed and "compliance" not in found):
        reason = "; ".join(failures) or pyinfra_lines.last_for(host.name) or "the run failed"
        row.update(status=HostStatus.FAILED, reason=reason)
        return row
    open_items = [f"{control}: {o['message']}" for control, o in found.items()
                  if o["status"] == Outcome.NOT_COMPLIANT and control != "compliance"]
    if dry:
        row["changes"] = plan
        row["plan"] = planned.for_host(host.name)
        if plan:
            row.update(status=HostStatus.WOULD_CHANGE, reason="; ".join(open_items))
        elif open_items:
            row.update(status=HostStatus.NOT_COMPLIANT, reason="; ".join(open_items))
        return row
    audited = audit.audit_host(host, host_state=host_state, docker_user=docker_user)
    row["audit"] = [{"instance": a["instance"], "status": a["status"],
                     "findings": [{key: f[key] for key in ("id", "severity", "title", "short", "status")}
                                  for f in a["findings"]]} for a in audited]
    if any(a["status"] == InstanceStatus.FAILED for a in audited):
        row.update(status=HostStatus.FAILED,
                   reason=next(a["reason"] for a in audited if a["status"] == InstanceStatus.FAILED))
    elif open_items or not all(a["compliant"] for a in audited):
        detail = [f"{a['instance']}: {words.summary(a['findings'])}" for a in audited if not a["compliant"]]
        row.update(status=HostStatus.NOT_COMPLIANT, reason="; ".join(open_items + detail))
    elif changes:
        row["status"] = HostStatus.CHANGED
    return row


def _safe_row(host, *args) -> dict:
    """A host's row; an error while auditing it fails that row alone."""
    try:
        return _row(host, *args)
    except Exception as err:  # noqa: BLE001 - one host's problem never stops the others
        return {"host": host.name, "status": HostStatus.FAILED, "reason": f"audit after the run: {one_line(err)}",
                "changes": [], "waived": {}, "audit": [], "traceback": details(err)}


def remediate(inventory_path: str, limit: list[str] | None = None, parallel: int = 20, dry: bool = False,
              on_op: Callable[[str], None] | None = None, shard: Shard | None = None) -> dict:
    """Run ``orthanc_harden.deploys.harden`` on every host (plan only when ``dry``) and return the report."""
    from pyinfra.context import ctx_state

    started = time.time()
    state, hosts, chosen = audit.load_state(inventory_path, limit, parallel, shard)
    if not hosts:
        return report([], inventory_path, started, dry, chosen)
    # The run's outcomes, restarts, plans and secrets are this State's (run_record): fresh, and its own.
    with ctx_state.use(state):
        return _remediate(state, hosts, chosen, inventory_path, started, parallel, dry, on_op)


def _remediate(state, hosts, chosen, inventory_path: str, started: float, parallel: int, dry: bool,
               on_op: Callable[[str], None] | None) -> dict:
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import StateStage
    from pyinfra.context import ctx_host, ctx_state

    from ..deploys import harden

    pyinfra_lines = _PyinfraLines()
    pyinfra_logger = logging.getLogger("pyinfra")
    pyinfra_logger.addHandler(pyinfra_lines)
    state.add_callback_handler(_callbacks(on_op, pyinfra_lines))
    failed: set = set()
    try:
        state.set_stage(StateStage.Connect)
        connected = _connect(state, hosts, parallel)
        failed.update(h for h in hosts if h not in connected)
        host_states = _host_states(connected, parallel)
        state.set_stage(StateStage.Prepare)
        for host in connected:
            try:
                with keyed_by_call_site(state, host), ctx_state.use(state), ctx_host.use(host):
                    harden(host_state=host_states.get(host))
            except Exception as err:  # noqa: BLE001 - this host fails alone; the others are planned
                outcomes.record(host.name, "prepare", "failed", one_line(err), traceback=details(err))
                failed.add(host)
        plans = {}
        for host in (h for h in connected if h not in failed and dry):
            try:
                with planned.dry_run():  # pyinfra runs an operation's body when asked whether it will change
                    plans[host] = _plan(state, host)
            except Exception as err:  # noqa: BLE001 - this host fails alone
                outcomes.record(host.name, "plan", "failed", one_line(err), traceback=details(err))
                failed.add(host)
        runnable = [h for h in connected if h not in failed]
        if not dry and runnable:
            state.active_hosts = set(runnable)
            state.set_stage(StateStage.Execute)
            try:
                run_ops(state)
            except PyinfraError as err:  # "No hosts remaining!": every host failed; rows say why
                pyinfra_lines.lines.append(str(err))
            except Exception as err:  # noqa: BLE001 - never from this package's operations (they fail their host)
                for host in runnable:
                    outcomes.record(host.name, "run", "failed", f"the run stopped: {one_line(err)}",
                                    traceback=details(err))
        failed.update(state.failed_hosts)
        # Each row audits its host again, hosts at once as the audit command does; a host the run did not change
        # is audited on the state read at its start (its HTTP answers are asked again), saving a round trip.
        reusable = {h: found for h, found in host_states.items() if not dry and _unchanged(state, h)}
        shared: list[dict] = []
        rows = audit.in_waves(hosts, lambda h: _safe_row(h, h in failed, pyinfra_lines, dry, plans.get(h, []),
                                                           reusable.get(h), shared), parallel)
    finally:
        state.set_stage(StateStage.Disconnect)
        for host in hosts:
            if host.connected:
                host.disconnect()
        pyinfra_logger.removeHandler(pyinfra_lines)
    return report(rows, inventory_path, started, dry, chosen)


def exit_code(rows: list[dict]) -> int:
    statuses = {r["status"] for r in rows}
    if HostStatus.FAILED in statuses:
        return EXIT_FAILED
    if statuses & {HostStatus.NOT_COMPLIANT, HostStatus.WOULD_CHANGE}:
        return EXIT_NOT_COMPLIANT
    return EXIT_COMPLIANT


def summary(rows: list[dict]) -> dict:
    return {s.value: sum(1 for r in rows if r["status"] == s) for s in STATUSES}


def report(rows: list[dict], inventory_path: str, started: float, dry: bool, chosen: dict | None = None) -> dict:
    return {**audit.run_metadata("remediate", inventory_path, started, chosen), "dry": dry,
            "exit_code": exit_code(rows), "summary": summary(rows),
            "waived": sum(1 for r in rows if r["waived"]), "hosts": rows}
