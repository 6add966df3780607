"""Drift correction on a schedule: a systemd timer (cron where there is no systemd) on the control node."""

from __future__ import annotations

import os
import re
import shlex
import sys
from io import StringIO

from pyinfra import host
from pyinfra.api import OperationValueError, operation
from pyinfra.facts.files import Directory, File
from pyinfra.operations import files, systemd

from .isolation import host_step

UNIT_DIR = "/etc/systemd/system"
CRON_DIR = "/etc/cron.d"
MODES = ("remediate", "audit")
# Debian's cron skips /etc/cron.d files whose names hold anything else (a dot included): the timer would never run.
TIMER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def default_command() -> str:
    """This installation's own entry point: right when the control node deploys to itself (``@local``)."""
    return os.path.join(os.path.dirname(sys.executable), "orthanc-harden")


def run_line(command: str, mode: str, inventory: str, report_dir: str, keep: int, shard: str | None = None) -> str:
    return shlex.join([command, "scheduled-run", mode, inventory, "--report-dir", report_dir, "--keep", str(keep),
                       *(["--shard", shard] if shard else [])])


def service_unit(mode: str, line: str, inventory: str, environment_file: str | None) -> str:
    env = f"EnvironmentFile={environment_file}\n" if environment_file else ""
    return (
        "# Managed by orthanc-harden (operations.schedule.timer): changes here are replaced.\n"
        "[Unit]\n"
        f"Description=orthanc-harden {mode} of {inventory}\n"
        "Wants=network-online.target\nAfter=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        # Exit 1 (a host not compliant) and 2 (a host failed) leave this unit failed, for monitoring to see.
        f"ExecStart={line}\n"
        f"WorkingDirectory={os.path.dirname(inventory) or '/'}\n"
        f"{env}"
        "UMask=0077\nNice=10\nTimeoutStartSec=6h\n"
    )


def timer_unit(mode: str, on_calendar: str) -> str:
    return (
        "# Managed by orthanc-harden (operations.schedule.timer): changes here are replaced.\n"
        "[Unit]\n"
        f"Description=orthanc-harden {mode} on a schedule\n\n"
        "[Timer]\n"
        f"OnCalendar={on_calendar}\nRandomizedDelaySec=300\nPersistent=true\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )


def cron_file(schedule: str, line: str, environment_file: str | None) -> str:
    body = line if not environment_file else f"set -a; . {shlex.quote(environment_file)}; set +a; exec {line}"
    return (
        "# Managed by orthanc-harden (operations.schedule.timer): changes here are replaced.\n"
        "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        f"{schedule} root {body}\n"
    )


@operation()
@host_step("schedule")
def timer(
    inventory: str,
    mode: str = "remediate",
    on_calendar: str = "hourly",
    cron_schedule: str = "17 * * * *",
    report_dir: str = "/var/lib/orthanc-harden/reports",
    keep: int = 48,
    command: str | None = None,
    environment_file: str | None = None,
    timer_name: str | None = None,
    present: bool = True,
    shard: str | None = None,
):
    """
    Run ``orthanc-harden remediate`` (or ``audit``) on a schedule from this host, the control node.

    + inventory: absolute path of the pyinfra inventory the scheduled run uses
    + mode: ``remediate`` (fix drift) or ``audit`` (report only)
    + on_calendar: systemd ``OnCalendar=`` of the timer
    + cron_schedule: the five cron fields, used where the host runs no systemd
    + report_dir: JSON reports (mode 0600), the newest ``keep`` of them kept
    + command: the ``orthanc-harden`` executable; default: the one running this deploy
    + environment_file: variables the secret references need (``VAULT_TOKEN``, ``SOPS_AGE_KEY_FILE``...), read
      by the run and never written into the unit or cron file
    + timer_name: name of the units and the cron file; default ``orthanc-harden-<mode>`` (``name=`` is
      pyinfra's label of the operation, never passed to it)
    + present: ``False`` stops and removes the timer or cron file
    + shard: ``I/N``: run only that shard of the inventory (``--shard``), one per control node

    Runs never overlap: a oneshot unit is not started twice, and every run takes a lock in ``report_dir``. The
    unit fails when a host is not compliant (exit 1) or failed (exit 2), so ``systemctl --failed`` and any
    monitoring of failed units show it.

    **Example:**

    .. code:: python

        from orthanc_harden.operations import schedule
        schedule.timer(name="Orthanc drift correction", inventory="/etc/orthanc-harden/fleet.py",
                       on_calendar="*-*-* 02:30:00", environment_file="/etc/orthanc-harden/secrets.env",
                       timer_name="orthanc-harden-nightly")
    """
    if mode not in MODES:
        raise OperationValueError(f"mode must be remediate or audit, not {mode!r}")
    if not os.path.isabs(inventory) or not os.path.isabs(report_dir):
        raise OperationValueError("inventory and report_dir must be absolute paths (the run starts elsewhere)")
    if timer_name is not None and not (isinstance(timer_name, str) and TIMER_NAME.fullmatch(timer_name)):
        raise OperationValueError(f"timer_name may hold only letters, digits, '-' and '_', not {timer_name!r}")
    if not isinstance(keep, int) or keep < 1:
        raise OperationValueError(f"keep must be a positive number of reports, not {keep!r}")
    if shard is not None:
        from ..runs.shard import ShardError, parse

        try:
            parse(shard)
        except ShardError as err:
            raise OperationValueError(str(err)) from None
    name = timer_name or f"orthanc-harden-{mode}"
    line = run_line(command or default_command(), mode, inventory, report_dir, keep, shard)
    service_path, timer_path = f"{UNIT_DIR}/{name}.service", f"{UNIT_DIR}/{name}.timer"
    if host.get_fact(Directory, path="/run/systemd/system"):
        if not present:
            if host.get_fact(File, path=timer_path):
                yield from systemd.service._inner(service=f"{name}.timer", running=False, enabled=False)
            yield from files.file._inner(path=timer_path, present=False)
            yield from files.file._inner(path=service_path, present=False)
            return
        units = [
            files.put._inner(src=StringIO(service_unit(mode, line, inventory, environment_file)),
                             dest=service_path, user="root", group="root", mode="644"),
            files.put._inner(src=StringIO(timer_unit(mode, on_calendar)), dest=timer_path, user="root",
                             group="root", mode="644"),
        ]
        changed = False
        for commands in units:
            for command_ in commands:
                changed = True
                yield command_
        yield from systemd.service._inner(service=f"{name}.timer", running=True, enabled=True,
                                          daemon_reload=changed)
        return
    cron_path = f"{CRON_DIR}/{name}"
    if not present:
        yield from files.file._inner(path=cron_path, present=False)
        return
    yield from files.put._inner(src=StringIO(cron_file(cron_schedule, line, environment_file)), dest=cron_path,
                                user="root", group="root", mode="644")
