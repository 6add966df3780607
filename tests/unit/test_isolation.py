"""operations.isolation: an error of any kind in one host's step becomes that host's one-line failure, never an
exception that would end pyinfra's run for every other host (#17)."""

from __future__ import annotations

import logging

import pytest
from paramiko import SSHException
from pyinfra.api import FunctionCommand, HiddenValue, StringCommand
from pyinfra.context import ctx_host

from orthanc_harden import outcomes
from orthanc_harden.operations import verdict
from orthanc_harden.operations.isolation import IsolatedCommand, host_deploy, host_step
from orthanc_harden.secrets import RUN_CACHE


class FakeHost:
    name = "pacs-01"
    print_prefix = "[pacs-01] "

    def __init__(self):
        self.logged = []

    def log_styled(self, message, **_):
        self.logged.append(message)


@pytest.fixture(autouse=True)
def clean():
    outcomes.clear()
    yield
    outcomes.clear()


def _steps(generator_function, *args, **kwargs):
    fake = FakeHost()
    with ctx_host.use(fake):
        return fake, list(host_step("auth")(generator_function)(*args, **kwargs))


@pytest.mark.parametrize("error, line", [
    (KeyError("files"), "auth: KeyError: 'files'"),
    (SSHException("Socket is closed"), "auth: connection lost or timed out (SSHException: Socket is closed)"),
    (TimeoutError(), "auth: connection lost or timed out (TimeoutError)"),
])
def test_an_exception_in_the_body_becomes_a_failing_command(error, line):
    def op():
        yield StringCommand("true")
        raise error

    _, (first, failing) = _steps(op)
    assert str(first) == "true"
    assert failing.function is verdict._fail and failing.args[:2] == ("auth", line)
    assert outcomes.for_host("pacs-01")["auth"]["message"] == line
    assert "Traceback" in outcomes.for_host("pacs-01")["auth"]["traceback"]


def test_a_callback_that_raises_fails_its_host_in_one_line(caplog):
    def restart(state, host, service):
        raise SSHException(f"lost while restarting {service}")

    def op():
        yield FunctionCommand(restart, ("orthanc.service",), {})

    fake, (command,) = _steps(op)
    assert isinstance(command, IsolatedCommand) and command.function is restart
    with caplog.at_level(logging.DEBUG, logger="pyinfra"):
        assert command.execute(None, fake, {}) is False
    line = "auth: connection lost or timed out (SSHException: lost while restarting orthanc.service)"
    assert fake.logged == [line]
    assert outcomes.for_host("pacs-01")["auth"]["message"] == line
    tracebacks = [r for r in caplog.records if "Traceback" in r.getMessage()]
    assert tracebacks and all(r.levelno == logging.DEBUG for r in tracebacks), "tracebacks only at -v/--debug"


def test_a_failing_callback_is_not_wrapped_twice_and_a_success_passes_through():
    def ok(state, host):
        return True

    def op():
        yield FunctionCommand(ok, (), {})

    fake, (command,) = _steps(op)
    assert command.execute(None, fake, {}) is True and fake.logged == []


def test_tracebacks_kept_for_reports_never_hold_a_password():
    RUN_CACHE._resolved["test:isolation"] = {"radiology": HiddenValue("Isolation-pw-93")}
    try:
        def op():
            raise ValueError("could not parse Isolation-pw-93")
            yield

        _steps(op)
    finally:
        del RUN_CACHE._resolved["test:isolation"]
    kept = outcomes.for_host("pacs-01")["auth"]
    assert "Isolation-pw-93" not in kept["traceback"] and "*MASKED*" in kept["traceback"]
    assert kept["message"] == "auth: ValueError: could not parse *MASKED*"


def test_a_deploy_that_cannot_plan_a_host_fails_that_host(monkeypatch):
    calls = []
    monkeypatch.setattr(verdict, "failed", lambda **kwargs: calls.append(kwargs))

    @host_deploy("harden")
    def harden():
        raise ValueError("the Orthanc probe printed no JSON")

    with ctx_host.use(FakeHost()):
        assert harden() is None
    assert calls == [{"name": "harden could not be planned", "control": "harden",
                      "message": "harden: ValueError: the Orthanc probe printed no JSON"}]
