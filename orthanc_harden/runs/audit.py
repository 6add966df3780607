"""Audit an inventory: connect to every host in parallel, read its Orthanc state once, evaluate the findings."""

from __future__ import annotations

import fnmatch
import getpass
import hashlib
import socket
import time
from datetime import datetime, timezone
from typing import Callable

from .. import __version__, findings, settings
from ..docker import engine, inspection
from ..statuses import InstanceStatus
from .shard import Shard, key_of, selection_digest
from ..audit import instances, probe

EXIT_COMPLIANT, EXIT_FINDINGS, EXIT_FAILED = 0, 1, 2


class InventoryError(Exception):
    """The inventory cannot be used: one line, before any host is contacted (never an empty, "compliant" run)."""


def _looks_like_a_file(path: str) -> bool:
    return path.endswith((".py", ".ini", ".yml", ".yaml")) or "/" in path


def _load_error(inventory_path: str, err: BaseException) -> str:
    # pyinfra wraps the inventory's own exception (UnexpectedExternalError, whose str() itself fails).
    cause = err.__context__ if type(err).__name__ == "UnexpectedExternalError" and err.__context__ else err
    if isinstance(cause, SyntaxError):
        return f"inventory {cause.filename}:{cause.lineno}: {cause.msg}"
    try:
        text = str(cause).strip()
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the cause
        text = ""
    return f"inventory {inventory_path} does not load: {type(cause).__name__}" + (
        f": {text.splitlines()[0][:300]}" if text else "")


def load_state(inventory_path: str, limit: list[str] | None, parallel: int, shard: Shard | None = None):
    """A pyinfra State for the inventory, made the way pyinfra's own CLI makes it; returns (state, hosts,
    selection), `selection` being the report's record of which hosts were chosen (see `selection`).
    Raises InventoryError when the inventory does not exist, does not load, or selects no host. `--limit` applies
    first, then the shard; a shard left without a host gives (None, [], selection): a run of no host."""
    import os
    import sys

    from pyinfra.api import Config, State
    from pyinfra.context import ctx_inventory, ctx_state
    from ..ansible_inventory import AnsibleInventoryError, make_inventory

    cwd = os.getcwd()
    if cwd not in sys.path:  # inventories may import modules next to them, as with the pyinfra CLI
        sys.path.append(cwd)
    state = State(check_for_changes=False)
    state.cwd = cwd
    ctx_state.set(state)
    if _looks_like_a_file(inventory_path) and not os.path.exists(inventory_path):
        raise InventoryError(f"inventory {inventory_path} does not exist")
    try:
        inventory = make_inventory(inventory_path, cwd=cwd)
    except AnsibleInventoryError as err:
        raise InventoryError(str(err)) from None
    except Exception as err:  # an inventory is the operator's Python: any error is reported in one line
        raise InventoryError(_load_error(inventory_path, err)) from None
    ctx_inventory.set(inventory)
    hosts = [h for h in inventory
             if not limit or any(fnmatch.fnmatch(h.name, p) or p in h.groups for p in limit)]
    if not hosts:
        raise InventoryError(f"inventory {inventory_path} has no host" +
                             (f" matching --limit {' '.join(limit)}" if limit else ""))
    chosen = selection(inventory_path, limit, [h.name for h in hosts], shard,
                       {h.name: key_of(h) for h in hosts if key_of(h) != h.name})
    if shard is not None:
        hosts = shard.select(hosts)
        if not hosts:  # an empty list would mean "no limit" to pyinfra: never initialise the state with it
            return None, [], chosen
    # A list: pyinfra treats any other limit (a set included) as no limit at all.
    state.init(inventory, Config(PARALLEL=parallel, FAIL_PERCENT=100), initial_limit=hosts)
    return state, hosts, chosen


def inventory_digest(inventory_path: str) -> str | None:
    """SHA-256 of what the inventory's hosts and settings are read from: the file alone (as before) for a Python
    inventory, and for an Ansible one also the `group_vars`/`host_vars` beside it, or every file of an inventory
    directory, so that runners whose variables differ are not merged as one fleet. None when there is no such
    path (an inline inventory)."""
    import os

    from ..ansible_inventory import is_ansible

    if os.path.isfile(inventory_path) and not is_ansible(inventory_path):
        with open(inventory_path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    if not os.path.exists(inventory_path):
        return None
    base = inventory_path if os.path.isdir(inventory_path) else os.path.dirname(inventory_path) or "."
    roots = [inventory_path] if os.path.isdir(inventory_path) else [
        inventory_path, *(os.path.join(base, d) for d in ("group_vars", "host_vars"))]
    files = []
    for root in roots:
        if os.path.isfile(root):
            files.append(root)
        for directory, subdirs, names in os.walk(root):
            subdirs.sort()
            files += [os.path.join(directory, name) for name in sorted(names)
                      if os.path.isfile(os.path.join(directory, name))]  # never open a fifo or a device
    digest = hashlib.sha256()
    for path in sorted(set(files), key=lambda p: os.path.relpath(p, base)):
        with open(path, "rb") as handle:
            digest.update(b"%s\0%s\n" % (os.path.relpath(path, base).encode(),
                                          hashlib.sha256(handle.read()).hexdigest().encode()))
    return digest.hexdigest()


def selection(inventory_path: str, limit: list[str] | None, selected: list[str], shard: Shard | None,
              keys: dict[str, str] | None = None) -> dict:
    """What a report says about the hosts it covers: the inventory file's digest (runners of one fleet load the
    same file, wherever they mount it), the hosts chosen by --limit before sharding, the shard, and the shard
    keys that are not the host's name (`shard.key_of`). `report merge` uses it to refuse reports of other
    inventories and to name hosts no report covered."""
    return {"inventory_sha256": inventory_digest(inventory_path), "limit": list(limit or []),
            "selected_hosts": sorted(selected),
            "selection_sha256": selection_digest(selected), "shard": shard.as_dict() if shard else None,
            "shard_keys": keys or {}}


def _row_failed(host_name: str, reason: str) -> dict:
    return {"host": host_name, "instance": None, "kind": None, "status": InstanceStatus.FAILED, "reason": reason,
            "findings": [], "compliant": False}


def _evaluate(instance: dict, data) -> dict:
    waivers = settings.get(data, "orthanc_harden_waivers")
    floor = settings.get(data, "orthanc_harden_min_version")
    results = findings.evaluate(instance, waivers=waivers, min_version=floor)
    summary = findings.summarise(results)
    instance["findings"] = [r.as_dict() for r in results]
    instance["compliant"] = summary["compliant"]
    instance["status"] = InstanceStatus.COMPLIANT if summary["compliant"] else InstanceStatus.FINDINGS
    return instance


def audit_host(host, host_state: dict | None = None, docker_user: list | None = None) -> list[dict]:
    """Every Orthanc of one host, evaluated; a single failed row (with the reason) when it cannot be audited.
    `host_state`: the host's ``OrthancHostState`` when the caller read it already and nothing changed since.
    `docker_user`: shared by the hosts of one run: an SSH host adds its Docker engine's ID and the ports its
    DOCKER-USER chain closes; a container host's published ports that the chain of its engine (same ID) closes are
    not open (``in_waves`` audits SSH hosts first)."""
    docker_user = docker_user if docker_user is not None else []
    from pyinfra.api.exceptions import ConnectError, PyinfraError

    from ..facts.orthanc import OrthancHostState
    from ..operations.isolation import details, one_line

    problems = settings.validate(host.data)
    if problems:
        return [_row_failed(host.name, f"host data: {problems[0]}")]
    docker_url = settings.get(host.data, "orthanc_harden_docker_url")
    try:
        if docker_url:
            client = engine.open_for(host.data)
            scope = settings.get(host.data, "orthanc_harden_docker_filters")
            found = [instances.from_container(host.name, c, docker_url) for c in inspection.discover(client, scope)]
            closed = {e["engine_id"]: set(e["closed"]) for e in docker_user if e.get("engine_id")}
            for inst in found:
                instances.docker_user_closed(inst, closed.get(inst.get("engine_id"), set()))
            urls = host.data.get("orthanc_harden_probe_urls") or {}
            for inst in found:
                inst["probe_url"] = urls.get(inst["instance"]) or instances.local_probe_url(inst)
        else:
            host.connect(raise_exceptions=True, show_errors=False)
            state = host_state if host_state is not None else host.get_fact(OrthancHostState)
            if state.get("probe") == 0:
                return [_row_failed(host.name, state["error"])]
            found = instances.from_host_state(host.name, state)
            if state.get("docker"):
                docker_user.append(state["docker"])
            address = host.data.get("ssh_hostname") or host.name
            for inst in found:
                inst["probe_url"] = (settings.get(host.data, "orthanc_harden_probe_url")
                                     or f"http://{address}:{inst['config']['effective']['HttpPort']}")
    except ConnectError as err:
        return [_row_failed(host.name, f"unreachable: {err}")]
    except (PyinfraError, ConnectionError, OSError, ValueError) as err:
        return [_row_failed(host.name, f"{type(err).__name__}: {err}")]
    except Exception as err:  # noqa: BLE001 - one host's problem never stops the others' audit
        return [{**_row_failed(host.name, one_line(err)), "traceback": details(err)}]
    if not found:
        return [{"host": host.name, "instance": None, "kind": None, "status": InstanceStatus.NO_ORTHANC,
                 "reason": "no Orthanc package, binary, unit, process or container found", "findings": [],
                 "compliant": True}]
    try:
        for inst in found:
            inst["probe"] = probe.probe(inst["probe_url"]) if inst.get("probe_url") else None
            _evaluate(inst, host.data)
    except Exception as err:  # noqa: BLE001 - one host's problem never stops the others' audit
        return [{**_row_failed(host.name, one_line(err)), "traceback": details(err)}]
    return found


def audit(inventory_path: str, limit: list[str] | None = None, parallel: int = 20,
          on_host: Callable[[str, list[dict]], None] | None = None, shard: Shard | None = None) -> dict:
    """Audit every host (read-only) and return the report: rows plus the run's metadata."""
    from pyinfra.api.state import StateStage

    started = time.time()
    state, hosts, chosen = load_state(inventory_path, limit, parallel, shard)
    if not hosts:
        return report([], inventory_path, started, chosen)
    state.set_stage(StateStage.Connect)

    shared: list[dict] = []

    def one(host):
        rows = audit_host(host, docker_user=shared)
        if on_host:
            on_host(host.name, rows)
        return rows

    try:
        rows = [row for host_rows in in_waves(hosts, one, parallel) for row in host_rows]
    finally:
        state.set_stage(StateStage.Disconnect)
        for host in hosts:
            if host.connected:
                host.disconnect()
    return report(rows, inventory_path, started, chosen)


def in_waves(hosts: list, work: Callable, parallel: int) -> list:
    """`work(host)` for every host, SSH hosts first, then Docker engines (whose containers' view depends on what
    the SSH hosts found), each wave `parallel` at a time; results in the hosts' order."""
    from gevent.pool import Pool

    engine = [bool(settings.get(h.data, "orthanc_harden_docker_url")) for h in hosts]
    results: dict[int, object] = {}
    for wave in ([i for i in range(len(hosts)) if not engine[i]], [i for i in range(len(hosts)) if engine[i]]):
        results.update(zip(wave, Pool(max(1, parallel)).imap(lambda i: work(hosts[i]), wave), strict=True))
    return [results[i] for i in range(len(hosts))]


def run_metadata(command: str, inventory_path: str, started: float, chosen: dict | None = None) -> dict:
    """What every report starts with: which tool, command and inventory, when, where and by whom, and which
    hosts it chose (`selection`)."""
    return {**(chosen or {}),
        "tool": "orthanc-harden", "version": __version__, "command": command, "inventory": inventory_path,
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 2), "control_node": socket.gethostname(),
        "user": getpass.getuser(),
    }


def exit_code(rows: list[dict]) -> int:
    failed = any(r["status"] == InstanceStatus.FAILED for r in rows)
    return EXIT_FAILED if failed else (EXIT_COMPLIANT if all(r["compliant"] for r in rows) else EXIT_FINDINGS)


def summary(rows: list[dict]) -> dict:
    return {s.value: sum(1 for r in rows if r["status"] == s) for s in InstanceStatus}


def report(rows: list[dict], inventory_path: str, started: float, chosen: dict | None = None) -> dict:
    return {**run_metadata("audit", inventory_path, started, chosen), "exit_code": exit_code(rows),
            "summary": summary(rows), "instances": rows}
