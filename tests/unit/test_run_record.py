"""One record per pyinfra run (``run_record``): two States in one process never see each other's outcomes,
restarts, plans, secrets or engines; an upgrade defers its restart only to an authentication operation that
follows it on the host; operations are keyed by call site for one run only; the compliance verdict is not a
change in a dry plan."""

from __future__ import annotations

import pyinfra
import pytest
from pyinfra.api import Config, FunctionCommand, HiddenValue, Inventory, State, operation
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_host, ctx_state

from orthanc_harden import outcomes, planned, restarts, run_record
from orthanc_harden.docker import engine
from orthanc_harden.operations import auth, verdict, upgrade
from orthanc_harden.runs import remediate
from orthanc_harden.secrets import RUN_CACHE, resolved_values


def _state(*names: str) -> State:
    state = State(Inventory((list(names), {})), Config(), check_for_changes=False)
    state.set_stage(StateStage.Prepare)
    return state


def _record_everything(tag: str) -> None:
    outcomes.record("pacs-01", "auth", "changed", tag)
    restarts.defer("pacs-01", [f"{tag}.service"])
    planned.record("pacs-01", "packages", "orthanc", {"name": "orthanc", "to": tag})
    RUN_CACHE._resolved[f"test:{tag}"] = {"radiology": HiddenValue(f"pw-{tag}")}
    run_record.current().engines[("pacs-01", tag)] = tag


def _seen() -> dict:
    return {"outcomes": outcomes.for_host("pacs-01"), "pending": run_record.current().pending_restarts,
            "plans": planned.for_host("pacs-01"), "secrets": sorted(RUN_CACHE.values()),
            "engines": dict(run_record.current().engines), "dry": planned.dry()}


def test_two_states_in_one_process_do_not_share_their_record():
    first, second = _state("pacs-01"), _state("pacs-01")
    with ctx_state.use(first):
        _record_everything("first")
        with planned.dry_run():
            with ctx_state.use(second):
                assert _seen() == {"outcomes": {}, "pending": {}, "plans": {}, "secrets": [], "engines": {},
                                   "dry": False}
                _record_everything("second")
            assert planned.dry()
        seen = _seen()
    assert seen["outcomes"] == {"auth": {"status": "changed", "message": "first"}}
    assert seen["pending"] == {"pacs-01": {"first.service"}}
    assert seen["plans"] == {"packages": [{"name": "orthanc", "to": "first"}]}
    assert seen["secrets"] == ["pw-first"]
    assert seen["engines"] == {("pacs-01", "first"): "first"}
    with ctx_state.use(second):
        assert outcomes.for_host("pacs-01") == {"auth": {"status": "changed", "message": "second"}}
        assert not planned.dry()
    # Masking never depends on which run is current: every live run's passwords are scrubbed.
    assert {"pw-first", "pw-second"} <= set(resolved_values())


def test_a_new_state_starts_empty_and_code_outside_a_run_has_its_own_record():
    previous = ctx_state.get()
    ctx_state.reset()
    try:
        outcomes.clear()
        outcomes.record("pacs-01", "upgrade", "ok", "outside")
        with ctx_state.use(_state("pacs-01")):
            assert outcomes.for_host("pacs-01") == {}
            outcomes.record("pacs-01", "upgrade", "ok", "inside")
        assert outcomes.for_host("pacs-01") == {"upgrade": {"status": "ok", "message": "outside"}}
        outcomes.clear()
    finally:
        ctx_state.set(previous)


def test_engine_clients_are_opened_once_per_run(monkeypatch):
    opened = []
    monkeypatch.setattr(engine, "open_for", lambda data, timeout: opened.append(object()) or opened[-1])
    state = _state("engine-01")
    host = state.inventory.get_host("engine-01")
    host.data.orthanc_harden_docker_url = "tcp://127.0.0.1:2376"
    with ctx_state.use(state):
        assert engine.shared_for(host) is engine.shared_for(host)
    with ctx_state.use(_state("engine-01")):
        other = engine.shared_for(host)
    assert len(opened) == 2 and other is opened[1]


USERS = {"radiology": HiddenValue("Run-record-pw-1")}


def _prepare(state, host_name: str, deploy) -> object:
    host = state.inventory.get_host(host_name)
    state.activate_host(host)
    with ctx_state.use(state), ctx_host.use(host):
        deploy()
    return host


def _executing(host, op_hash: str):
    """The host as it is while `op_hash` executes: pyinfra sets current_op_hash around the commands."""
    host.current_op_hash = op_hash
    return host


def test_an_upgrade_without_restart_defers_only_to_an_authentication_that_follows_it():
    state = _state("pacs-01", "pacs-02", "pacs-03")

    def upgrade_then_auth():
        upgrade.package(name="upgrade", restart=False)
        auth.authentication(name="auth", users=USERS, service="orthanc.service")

    def upgrade_alone():  # an embedding deploy calling only upgrade.package(restart=False)
        upgrade.package(name="upgrade", restart=False)

    def auth_first():
        auth.authentication(name="auth", users=USERS, service="orthanc.service")
        upgrade.package(name="upgrade", restart=False)

    both = _prepare(state, "pacs-01", upgrade_then_auth)
    alone = _prepare(state, "pacs-02", upgrade_alone)
    reversed_ = _prepare(state, "pacs-03", auth_first)
    with ctx_state.use(state):
        assert restarts.taken_after(_executing(both, both.op_hash_order[0]), "orthanc.service")
        assert not restarts.taken_after(_executing(both, both.op_hash_order[0]), "orthanc-2.service")
        assert not restarts.taken_after(_executing(alone, alone.op_hash_order[0]), "orthanc.service")
        assert not restarts.taken_after(_executing(reversed_, reversed_.op_hash_order[1]), "orthanc.service")
    with ctx_state.use(_state("pacs-01")):  # another run never sees this run's authentication
        assert not restarts.taken_after(_executing(both, both.op_hash_order[0]), "orthanc.service")


def test_authentication_without_restart_takes_no_deferred_restart():
    state = _state("pacs-01")

    def deploy():
        upgrade.package(name="upgrade", restart=False)
        auth.authentication(name="auth", users=USERS, restart=False)

    host = _prepare(state, "pacs-01", deploy)
    with ctx_state.use(state):
        assert not restarts.taken_after(_executing(host, host.op_hash_order[0]), "orthanc.service")


def test_upgraded_without_a_taker_restarts_the_units_itself(monkeypatch):
    """verify.upgraded with restarted=False: units no later authentication takes are restarted there."""
    from orthanc_harden.checks import verify

    restarted, logged = [], []

    class Output:
        stdout_lines = ["Orthanc 1.10.1", "active-unit orthanc.service", "active-unit orthanc-b.service"]

    monkeypatch.setattr(verify.hostcmd, "run", lambda host, command, **kw: (True, Output()))
    monkeypatch.setattr(verify, "restart_answering", lambda host, unit, gate, timeout: restarted.append(unit) or True)
    state = _state("pacs-01")

    def deploy():
        upgrade.package(name="upgrade", restart=False)
        auth.authentication(name="auth b", users=USERS, service="orthanc-b.service")

    host = _prepare(state, "pacs-01", deploy)
    host.log_styled = lambda message, **kw: logged.append(message)
    with ctx_state.use(state):
        assert verify.upgraded(state, _executing(host, host.op_hash_order[0]), "/usr/sbin/Orthanc", "/etc/orthanc",
                               "1.10.1", "1.5.8", None, 8042, "apt", ["orthanc.service", "orthanc-b.service"],
                               restarted=False)
        assert restarted == ["orthanc.service"]
        assert restarts.pending("pacs-01", "orthanc-b.service") and not restarts.pending("pacs-01",
                                                                                           "orthanc.service")
        message = outcomes.for_host("pacs-01")["upgrade"]["message"]
    assert "orthanc.service restarted now (upgrade.package(restart=False), but no auth.authentication" in message


@operation()
def _one(tag: str):
    yield f"echo {tag}"


def _mixed_fleet():
    from pyinfra import host

    seen = []

    def deploy():
        seen.append(pyinfra.is_cli)
        if host.name == "engine-01":
            _one(name="container", tag="container")
        _one(name="compliant", tag="compliant")

    return deploy, seen


def test_operations_are_keyed_by_call_site_for_this_run_only():
    state = _state("pacs-01", "engine-01")
    deploy, seen = _mixed_fleet()
    hosts = {}
    for name in ("pacs-01", "engine-01"):
        host = state.inventory.get_host(name)
        state.activate_host(host)
        with remediate.keyed_by_call_site(state, host), ctx_state.use(state), ctx_host.use(host):
            deploy()
        hosts[name] = host
    assert seen == [False, False]  # pyinfra's process-wide CLI flag is left alone
    pacs, engine_ = hosts["pacs-01"].op_hash_order, hosts["engine-01"].op_hash_order
    # API mode alone would give the package host's `compliant` and the engine's `container` one hash (both first)
    assert pacs[0] not in engine_[:1]
    assert {tuple(sorted(state.get_op_meta(h).names)) for h in pacs + engine_} == {("compliant",), ("container",)}
    assert hosts["pacs-01"].loop_position == [] and hosts["engine-01"].loop_position == []


@pytest.mark.parametrize("dry", [False, True])
def test_the_compliance_verdict_is_a_failure_when_run_and_no_change_in_a_dry_plan(dry):
    class FakeHost:
        name = "pacs-01"

        def noop(self, message):
            pass

    with ctx_state.use(_state("pacs-01")), ctx_host.use(FakeHost()), planned.dry_run(dry):
        outcomes.record("pacs-01", "upgrade", "not-compliant", "no package reaches 1.5.8")
        commands = list(verdict.compliant._inner())
        recorded = outcomes.for_host("pacs-01")["compliance"]
    assert recorded == {"status": "not-compliant", "message": "not compliant: upgrade: no package reaches 1.5.8"}
    assert len(commands) == (0 if dry else 1) and all(isinstance(c, FunctionCommand) for c in commands)
