"""operations.schedule.timer through pyinfra's own operation wrapper (API mode), facts in, commands out.

``name=`` is pyinfra's global argument (the operation's label): the wrapper takes it away before the operation
runs, so a parameter called ``name`` could never be set (#22). The units' name is ``timer_name``.
"""

from __future__ import annotations

import hashlib

import pytest
from pyinfra.api import Config, FileUploadCommand, Inventory, State
from pyinfra.api.operation import add_op
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import TmpDir
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from orthanc_harden.operations import schedule

INVENTORY = "/etc/orthanc-harden/fleet.py"


def _commands(files: dict[str, str] | None = None, systemd: bool = True, timer: tuple[bool, bool] = (False, False),
              **kwargs) -> tuple[list, set[str]]:
    """(commands, operation names) of one schedule.timer call on a control node whose state the facts give:
    `files` {path: content} exist (root:root 644), the timer unit is (running, enabled)."""
    files = files or {}
    inventory = Inventory((["control"], {}))
    state = State(inventory, Config(), check_for_changes=False)
    host = inventory.get_host("control")

    def get_fact(cls, **fact_kwargs):
        path = fact_kwargs.get("path")
        if cls is Directory:
            present = {"/etc/systemd/system", "/etc/cron.d"} | ({"/run/systemd/system"} if systemd else set())
            return {"mode": 755, "user": "root", "group": "root"} if path in present else None
        if cls is TmpDir:
            return "/tmp"
        if cls is File:
            return {"mode": 644, "user": "root", "group": "root"} if path in files else None
        if cls is Sha1File:
            return hashlib.sha1(files[path].encode()).hexdigest() if path in files else None
        if cls in (SystemdStatus, SystemdEnabled):
            (service,) = fact_kwargs["services"]
            return {service: timer[0] if cls is SystemdStatus else timer[1]}
        raise AssertionError(f"unexpected fact {cls.__name__}")

    host.get_fact = get_fact
    (meta,) = add_op(state, schedule.timer, host=host, inventory=INVENTORY, **kwargs).values()
    with ctx_state.use(state), ctx_host.use(host):
        commands = list(state.ops[host][meta._hash].command_generator())
    return commands, state.get_op_meta(meta._hash).names


def _shown(commands: list) -> list[str]:
    return [f"upload {c.dest}" if isinstance(c, FileUploadCommand) else
            str(c) if not hasattr(c, "function") else f"{c.function.__name__}{c.args}" for c in commands]


def test_name_labels_the_operation_and_timer_name_names_the_units():
    commands, names = _commands(name="Nightly drift correction", timer_name="pacs-nightly", command="/usr/bin/oh")
    assert names == {"Nightly drift correction"}
    shown = _shown(commands)
    assert "upload /etc/systemd/system/pacs-nightly.service" in shown
    assert "upload /etc/systemd/system/pacs-nightly.timer" in shown
    assert shown[-3:] == ["systemctl daemon-reload", "systemctl start pacs-nightly.timer",
                          "systemctl enable pacs-nightly.timer"]
    assert not any("orthanc-harden-remediate" in line for line in shown)


def test_without_timer_name_the_units_are_named_for_the_mode():
    commands, names = _commands(name="Scheduled audit", mode="audit")
    assert names == {"Scheduled audit"}
    assert {"upload /etc/systemd/system/orthanc-harden-audit.service",
            "upload /etc/systemd/system/orthanc-harden-audit.timer"} <= set(_shown(commands))


def test_timer_name_names_the_cron_file_where_there_is_no_systemd():
    commands, _ = _commands(systemd=False, timer_name="pacs-nightly")
    assert "upload /etc/cron.d/pacs-nightly" in _shown(commands)


def test_installed_and_running_is_a_no_change():
    line = schedule.run_line("/usr/bin/oh", "remediate", INVENTORY, "/var/lib/orthanc-harden/reports", 48)
    installed = {"/etc/systemd/system/pacs-nightly.service": schedule.service_unit("remediate", line, INVENTORY, None),
                 "/etc/systemd/system/pacs-nightly.timer": schedule.timer_unit("remediate", "hourly")}
    commands, _ = _commands(installed, timer=(True, True), timer_name="pacs-nightly", command="/usr/bin/oh")
    assert commands == []


@pytest.mark.parametrize("bad", ["nightly.timer", "../pacs", "pacs nightly", "-pacs", ""])
def test_a_timer_name_cron_or_systemd_would_not_take_fails_with_one_line(bad):
    commands, _ = _commands(timer_name=bad)
    assert _shown(commands) == [
        f"_fail('schedule', \"schedule: timer_name may hold only letters, digits, '-' and '_', not {bad!r}\", "
        "'failed')"]
