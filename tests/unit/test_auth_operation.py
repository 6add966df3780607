"""operations.auth.authentication in pyinfra's spec style: facts in, commands out (no host needed)."""

from __future__ import annotations

import json

import pytest
from pyinfra.api import FunctionCommand, HiddenValue, OperationValueError, StringCommand
from pyinfra.context import ctx_host

from orthanc_harden.facts.orthanc import OrthancAuthPlan
from orthanc_harden import outcomes, restarts
from orthanc_harden.operations import auth, health

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


class LoggingHost(FakeHost):
    def __init__(self, plan: dict):
        super().__init__(plan)
        self.logged = []

    def log_styled(self, message, **_kwargs):
        self.logged.append(message)


def test_plan_error_fails_this_host_alone_when_it_runs():
    """Raised from the operation's body, the error stopped the operation on every host of the run (#17)."""
    message = "key HttpPort is defined in /etc/orthanc/a.json and /etc/orthanc/b.json"
    _, commands = _run({"error": message})
    (fail,) = commands
    assert isinstance(fail, FunctionCommand)
    host = LoggingHost({})
    assert fail.execute(None, host, {}) is False
    assert host.logged == [message]
    assert outcomes.for_host("pacs-01")["auth"]["status"] == "failed"
    assert outcomes.for_host("pacs-01")["auth"]["message"] == message


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
    with ctx_host.use(fake), pytest.raises(OperationValueError, match=message):
        list(auth.authentication._inner(users=users))
    assert fake.fact_stdin == []


def test_bad_users_mode():
    with pytest.raises(OperationValueError, match="users_mode"):
        _run({"changed": False}, users_mode="replace")


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
    assert commands[0].function is health.restart_after_upgrade and len(commands) == 2
    assert commands[1].execute(None, LoggingHost({}), {}) is False
