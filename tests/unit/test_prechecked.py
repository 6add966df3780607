"""Plans read with the host's state before planning (issue #24), in pyinfra's spec style: facts in, commands out.
An operation uses a plan read ahead only for its very request, as its own connector arguments would read it, and
only while nothing in the run has changed the host; otherwise it asks the host as it does alone."""

from __future__ import annotations

import base64
import json
import re
import zlib
from types import SimpleNamespace

import pytest
from pyinfra.api import Config, HiddenValue, Inventory, State, StringCommand
from pyinfra.api.arguments import pop_global_arguments
from pyinfra.api.command import FunctionCommand
from pyinfra.api.operation import OperationMeta
from pyinfra.context import ctx_host, ctx_state

from orthanc_harden import outcomes, prechecked
from orthanc_harden.facts.orthanc import OrthancAuthPlan, OrthancFirewallPlan, OrthancHostCheck
from orthanc_harden.operations import auth, firewall
from orthanc_harden.remote import bundle
from orthanc_harden.runs import host_check
from orthanc_harden.secrets import RUN_CACHE

PASSWORD = "Spec-Precheck-pw-27"
USERS = {"radiology": HiddenValue(PASSWORD)}
AUTH_REQUEST = auth._request(USERS, "/etc/orthanc", "exact", False, "orthanc.service", keep_backups=True)
FIREWALL_REQUEST = firewall.request_for([8042, 4242], ["10.0.0.0/8"], "auto", False, False, None, docker=True)
UNCHANGED, CHANGED = {"changed": False, "files": []}, {"changed": True, "files": ["/etc/orthanc/credentials.json"]}


class FakeHost:
    name = "pacs-01"
    connector = None
    current_op_global_arguments = None

    def __init__(self, plan: dict):
        self.plan, self.asked, self.noops = plan, [], []

    def get_fact(self, cls, **kwargs):
        self.asked.append(cls)
        return self.plan

    def noop(self, message):
        self.noops.append(message)


@pytest.fixture(autouse=True)
def _clean():
    prechecked.clear()
    outcomes.clear()
    yield
    prechecked.clear()


def _auth(fake: FakeHost, users=None) -> list:
    with ctx_host.use(fake):
        return list(auth.authentication._inner(users=users or USERS))


def _firewall(fake: FakeHost, **kwargs) -> list:
    with ctx_host.use(fake):
        return list(firewall.restrict._inner(**{"ports": [8042, 4242], "cidrs": ["10.0.0.0/8"], **kwargs}))


def test_without_a_plan_read_ahead_the_operations_ask_the_host():
    fake = FakeHost(UNCHANGED)
    assert _auth(fake) == [] and fake.asked == [OrthancAuthPlan]
    fake = FakeHost({"backend": "ufw", "changed": False, "problems": []})
    assert _firewall(fake) == [] and fake.asked == [OrthancFirewallPlan]


def _applies(commands: list) -> bool:
    """The configuration edit, then the restart and health gate."""
    return len(commands) == 2 and isinstance(commands[0], StringCommand) and isinstance(commands[1], FunctionCommand)


@pytest.mark.parametrize("plan, applies", [(UNCHANGED, False), (CHANGED, True)])
def test_the_plan_read_ahead_for_the_same_request_is_used_without_asking(plan, applies):
    prechecked.record("pacs-01", "auth", AUTH_REQUEST, {}, plan)
    fake = FakeHost({"error": "the host must not be asked"})
    commands = _auth(fake)
    assert _applies(commands) if applies else commands == []
    assert fake.asked == []


def test_a_rotated_password_is_another_request_so_the_host_is_asked():
    prechecked.record("pacs-01", "auth", AUTH_REQUEST, {}, UNCHANGED)
    fake = FakeHost(CHANGED)
    commands = _auth(fake, users={"radiology": HiddenValue(PASSWORD + "-rotated")})
    assert fake.asked == [OrthancAuthPlan] and _applies(commands)


def test_a_changed_network_is_another_request_so_the_host_is_asked():
    prechecked.record("pacs-01", "firewall", FIREWALL_REQUEST, {}, {"backend": "ufw", "changed": False,
                                                                      "problems": []})
    fake = FakeHost({"backend": "ufw", "changed": True, "problems": []})
    (apply,) = _firewall(fake, cidrs=["10.0.0.0/8", "192.0.2.0/24"])
    assert fake.asked == [OrthancFirewallPlan] and apply.args[0] == "apply"
    fake = FakeHost({"error": "the host must not be asked"})
    assert _firewall(fake) == [] and fake.asked == []  # the request read ahead: no question


def test_a_plan_read_as_another_user_is_not_used():
    prechecked.record("pacs-01", "auth", AUTH_REQUEST, {"_sudo": True}, UNCHANGED)
    fake = FakeHost(CHANGED)
    _auth(fake)
    assert fake.asked == [OrthancAuthPlan]


def test_once_the_run_changed_the_host_the_operation_asks_again():
    """An upgrade (or any operation) that changed the host before this one may have changed the answer."""
    fake = FakeHost(CHANGED)
    state = State(Inventory((["pacs-01"], {})), Config())
    state.ops = {fake: {}}
    prechecked.record("pacs-01", "auth", AUTH_REQUEST, {}, UNCHANGED, state=state)
    with ctx_state.use(state):
        assert _auth(FakeHost({"error": "the host must not be asked"})) == []  # unchanged yet: the plan is used
        done = OperationMeta("upgrade", True)
        done.set_complete(True, ["apt-get install orthanc"], [])
        state.ops = {fake: {"upgrade": SimpleNamespace(operation_meta=done)}}
        commands = _auth(fake)
    assert fake.asked == [OrthancAuthPlan] and _applies(commands)


def test_each_run_has_its_own_plans():
    """Kept in the run's record: another pyinfra run in the process (a user's own deploy) reads none of them."""
    ours, theirs = (State(Inventory((["pacs-01"], {})), Config()) for _ in range(2))
    prechecked.record("pacs-01", "auth", AUTH_REQUEST, {}, UNCHANGED, state=ours)
    fake = FakeHost(CHANGED)
    with ctx_state.use(theirs):
        _auth(fake)
    assert fake.asked == [OrthancAuthPlan]


def test_removing_the_rules_never_uses_a_plan_read_ahead():
    prechecked.record("pacs-01", "firewall", json.dumps({}), {}, {"changed": False})
    fake = FakeHost({"changed": True, "removed": ["ufw"]})
    (remove,) = _firewall(fake, ports=[], cidrs=[], present=False)
    assert fake.asked == [OrthancFirewallPlan] and remove.args[0] == "remove"


def _check_program() -> dict:
    """The host's combined program as a namespace (its main not run)."""
    packed = re.search(r"b64decode\('([^']+)'\)", bundle()).group(1)
    namespace = {"__name__": "spec"}
    exec(zlib.decompress(base64.b64decode(packed)).decode(), namespace)
    return namespace


STATE = {"probe": 1, "units": [{"unit": "orthanc.service", "config_path": "/etc/orthanc"}], "docker": None,
         "configs": {"/etc/orthanc": {"files": [{"values": {"HttpPort": 8042}}, {"values": {"DicomPort": 4242}}]}}}


@pytest.fixture
def data(tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"radiology": PASSWORD}))
    users.chmod(0o600)
    yield {"orthanc_harden_users_ref": f"file:{users}", "orthanc_harden_allowed_cidrs": ["10.0.0.0/8"]}
    RUN_CACHE._resolved.clear()


def test_the_host_derives_the_requests_the_deploy_makes(data):
    """What the host plans for, sent back without the passwords and completed by the control node, is what the
    deploy's operations then ask: the plans are used (no extra SSH command) on a compliant host."""
    program, wanted = _check_program(), host_check.wanted(data)
    assert wanted["auth"]["users"] == {"radiology": PASSWORD}
    (request,) = program["auth_requests"](STATE, wanted["auth"])
    echoed = program["without_users"](request)
    assert PASSWORD not in json.dumps(echoed)
    assert prechecked.digest("auth", dict(echoed, users=wanted["auth"]["users"]), {}) == \
        prechecked.digest("auth", AUTH_REQUEST, {})
    served = program["part"]("probe")["served_ports"]
    request = program["firewall_request"](STATE, wanted["firewall"], served)
    assert prechecked.digest("firewall", request, {}) == prechecked.digest("firewall", firewall.request_for(
        [8042, 4242], ["10.0.0.0/8"], "auto", False, False, None, docker=False), {})


def test_switched_off_or_refused_controls_are_not_planned_ahead(data):
    assert host_check.wanted({**data, "orthanc_harden_auth_enabled": False})["auth"] is None
    assert host_check.wanted({**data, "orthanc_harden_users_ref": "file:/nonexistent/users.json"})["auth"] is None
    assert host_check.wanted({**data, "orthanc_harden_allowed_cidrs": []})["firewall"] is None
    assert host_check.wanted({**data, "orthanc_harden_firewall_remove": True})["firewall"] is None


def test_a_store_that_breaks_unexpectedly_leaves_the_deploy_to_report_it(data, monkeypatch):
    """Read ahead for every host before planning: one host's broken store must not stop the run."""
    def broken(ref):
        raise RuntimeError("the store's client crashed")

    monkeypatch.setattr(RUN_CACHE, "users", broken)
    assert host_check.wanted(data)["auth"] is None
    assert host_check.wanted(data)["firewall"] is not None


def test_read_keeps_each_plan_for_its_request_and_sends_passwords_on_stdin_only(data):
    inventory = Inventory((["pacs-01"], {}))
    state = State(inventory, Config())
    host = inventory.get_host("pacs-01")
    wanted = host_check.wanted(data)
    auth_plan, firewall_plan = {"changed": False, "files": []}, {"backend": "ufw", "changed": False, "problems": []}
    asked = []

    def get_fact(cls, **kwargs):
        asked.append((cls, kwargs))
        program = _check_program()
        (request,) = program["auth_requests"](STATE, json.loads(kwargs["_stdin"].getvalue())["auth"])
        return {"state": STATE, "auth": [{"request": program["without_users"](request), "plan": auth_plan}],
                "firewall": {"request": program["firewall_request"](STATE, wanted["firewall"],
                                                                     program["part"]("probe")["served_ports"]),
                             "plan": firewall_plan}}

    host.get_fact = get_fact
    with ctx_state.use(state):
        assert host_check.read(host, wanted) == STATE
    ((cls, kwargs),) = asked
    assert cls is OrthancHostCheck and str(kwargs["_stdin"]) == "*MASKED*"
    assert PASSWORD not in OrthancHostCheck().command()
    fake = FakeHost({"error": "the host must not be asked"})
    with ctx_state.use(state):  # the run's record, and what pyinfra gives an operation of this host's data
        fake.current_op_global_arguments = pop_global_arguments(state, host, {})[0]
        assert _auth(fake) == [] and fake.asked == []
        assert _firewall(fake, docker=False) == [] and fake.asked == []  # no Docker engine on the host
