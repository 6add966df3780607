"""operations.auth.authentication in pyinfra's spec style: facts in, commands out (no host needed)."""

from __future__ import annotations

import json

import pytest
from pyinfra.api import FunctionCommand, HiddenValue, StringCommand
from pyinfra.context import ctx_host

from orthanc_harden.facts.orthanc import OrthancAuthPlan
from orthanc_harden import restarts
from orthanc_harden.checks import health
from orthanc_harden.operations import auth, verdict

PASSWORD = "Spec-Canary-pw-81"


class FakeHost:
    name = "pacs-01"

    def __init__(self, plan: dict):
        self.plan, self.noops, self.fact_stdin = plan, [], []

    def get_fact(self, cls, **kwargs):
        assert cls is OrthancAuthPlan
        self.fact_stdin.append(kwargs["_stdin"])
        return self.plan

    def noop(self, message):
        self.noops.append(message)


def _run(plan: dict, **kwargs):
    fake = FakeHost(plan)
    with ctx_host.use(fake):
        commands = list(auth.authentication._inner(**{"users": {"radiology": HiddenValue(PASSWORD)}, **kwargs}))
    return fake, commands


def test_no_change_yields_no_command():
    fake, commands = _run({"changed": False, "files": []})
    assert commands == []
    assert fake.noops == ["authentication already on with the store's users in /etc/orthanc"]


def test_change_applies_then_restarts_and_gates_once():
    plan = {"changed": True, "files": ["/etc/orthanc/credentials.json", "/etc/orthanc/orthanc.json"]}
    fake, commands = _run(plan, probe_url="http://pacs-01:8042/")
    apply, gate = commands
    assert isinstance(apply, StringCommand) and isinstance(gate, FunctionCommand)
    assert apply.get_masked_value().startswith("python3 -c ") and apply.get_masked_value().endswith(" apply")
    service, files, gate_args = gate.args
    assert (service, files, gate_args["url"], gate_args["user"]) == ("orthanc.service", plan["files"],
                                                                      "http://pacs-01:8042", "radiology")
    # The password goes on standard input, masked when printed, never in the command text.
    stdin = apply.connector_arguments["_stdin"]
    assert str(stdin) == "*MASKED*" and repr(fake.fact_stdin[0]) == "*MASKED*"
    assert json.loads(stdin.getvalue())["users"] == {"radiology": PASSWORD}
    assert PASSWORD not in apply.get_raw_value() and PASSWORD not in repr(gate)


def test_no_restart_when_asked():
    _, commands = _run({"changed": True, "files": ["/etc/orthanc/orthanc.json"]}, restart=False)
    assert [type(c) for c in commands] == [StringCommand]


def _failure(command) -> str:
    """The message of a command that fails the host (operations never raise for one host's problem)."""
    assert isinstance(command, FunctionCommand) and command.function is verdict._fail, command
    return command.args[1]


def test_plan_error_fails_the_host_with_a_command_never_an_exception():
    # Raised, it would end pyinfra's run for every other host too (#17).
    _, (command,) = _run({"error": "key HttpPort is defined in /etc/orthanc/a.json and /etc/orthanc/b.json"})
    assert _failure(command) == "key HttpPort is defined in /etc/orthanc/a.json and /etc/orthanc/b.json"


@pytest.mark.parametrize("users, message", [
    ({}, "no users"),
    ({"radiology": "plain-string"}, "must be a pyinfra HiddenValue"),
    ({"a:b": HiddenValue("x")}, "without ':'"),
    ({"radiology": HiddenValue("")}, "passwords non-empty"),
    # Issue #18.7: what UTF-8 JSON cannot hold fails here, before the backup and the write, not at write time.
    ({"radiology": HiddenValue("pw\udc80x")}, "the password is not valid Unicode"),
    ({"ra\ud800": HiddenValue("pw")}, "the name is not valid Unicode"),
    ({"radiology": HiddenValue("pw\nx")}, "the password holds a control character"),
    ({"radiology": HiddenValue("pw\x00")}, "the password holds a control character"),
])
def test_bad_users_are_refused_before_any_fact(users, message):
    fake = FakeHost({"changed": True, "files": []})
    with ctx_host.use(fake):
        (command,) = list(auth.authentication._inner(users=users))
    assert message in _failure(command) and _failure(command).startswith("auth: ")
    assert fake.fact_stdin == []


def test_bad_users_mode():
    _, (command,) = _run({"changed": False}, users_mode="replace")
    assert "users_mode" in _failure(command)


def _after_upgrade(plan: dict):
    """The same operation after an upgrade in this run left orthanc.service's restart to it."""
    restarts.clear()
    restarts.defer("pacs-01", ["orthanc.service"])
    try:
        return _run(plan)
    finally:
        restarts.clear()


def test_a_restart_left_by_the_upgrade_is_made_and_gated_once_even_without_a_change():
    fake, commands = _after_upgrade({"changed": False, "files": []})
    (gate,) = commands
    assert gate.function is health.restart_and_gate and gate.args[:2] == ("orthanc.service", [])
    assert fake.noops == []


def test_a_restart_left_by_the_upgrade_joins_the_configuration_change():
    plan = {"changed": True, "files": ["/etc/orthanc/orthanc.json"]}
    _, (apply, gate) = _after_upgrade(plan)
    assert isinstance(apply, StringCommand) and gate.args[:2] == ("orthanc.service", plan["files"])


def test_a_plan_error_still_restarts_the_upgraded_orthanc_then_fails():
    fake = FakeHost({"error": "zz.json does not parse"})
    restarts.defer("pacs-01", ["orthanc.service"])
    commands = []
    try:
        with ctx_host.use(fake):
            for command in auth.authentication._inner(users={"radiology": HiddenValue(PASSWORD)}):
                commands.append(command)
    finally:
        restarts.clear()
    assert commands[0].function is health.restart_after_upgrade
    assert _failure(commands[1]) == "zz.json does not parse"
