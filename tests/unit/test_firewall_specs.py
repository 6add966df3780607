"""Firewall rules as text (the remote program's builders) and operations.firewall.restrict: facts in, commands out.
The real backends run in tests/integration/test_firewall.py."""

from __future__ import annotations

import json

import pytest
from pyinfra.api import FunctionCommand
from pyinfra.context import ctx_host

from orthanc_harden import outcomes
from orthanc_harden.facts.orthanc import OrthancFirewallPlan
from orthanc_harden.operations import firewall, verdict
from orthanc_harden.remote import program


@pytest.fixture(scope="module")
def remote() -> dict:
    namespace: dict = {"__name__": "orthanc_harden_firewall_spec"}
    exec(compile(program("firewall"), "firewall-program", "exec"), namespace)  # noqa: S102 - our own program
    return namespace


def test_nftables_ruleset(remote):
    text = remote["nft_ruleset"]([4242, 8042], ["10.0.0.0/8"], [])
    assert "table inet orthanc_harden {" in text
    assert "set allowed_v4 { type ipv4_addr; flags interval; elements = { 10.0.0.0/8 } }" in text
    assert "set allowed_v6 { type ipv6_addr; flags interval; }" in text  # an empty set has no elements clause
    assert text.splitlines()[-4:-2] == ["    tcp dport { 4242, 8042 } ip6 saddr @allowed_v6 accept",
                                        "    tcp dport { 4242, 8042 } drop"]


def test_iptables_rules_in_iptables_save_order(remote):
    assert remote["ipt_rules"]([8042], ["172.18.0.1/32"]) == [
        "-A ORTHANC-HARDEN -s 172.18.0.1/32 -p tcp -m multiport --dports 8042 -m comment --comment orthanc-harden "
        "-j RETURN",
        "-A ORTHANC-HARDEN -p tcp -m multiport --dports 8042 -m comment --comment orthanc-harden -j DROP",
    ]


def test_ufw_tuples_allow_then_deny_per_family(remote):
    desired = remote["_ufw_desired"]([8042], ["172.18.0.1/32", "10.0.0.0/8"], ["fd00::/64"])
    assert [(r["action"], r["src"]) for r in desired["v4"]] == [
        ("allow", "172.18.0.1"), ("allow", "10.0.0.0/8"), ("deny", "0.0.0.0/0")]
    assert [(r["action"], r["src"]) for r in desired["v6"]] == [("allow", "fd00::/64"), ("deny", "::/0")]


@pytest.mark.parametrize("request_, message", [
    ({"ports": [8042], "cidrs": ["10.0.0.300/8"]}, "invalid CIDR"),
    ({"ports": [0], "cidrs": ["10.0.0.0/8"]}, "ports must be TCP ports"),
    ({"ports": [22, 8042], "cidrs": ["10.0.0.0/8"], "ssh_port": 22}, "is SSH's"),
    ({"ports": [8042], "cidrs": []}, "the allow list is empty"),
])
def test_program_validation(remote, request_, message):
    with pytest.raises(remote["FirewallError"], match=message):
        remote["validate"](request_)


class FakeHost:
    name = "pacs-01"
    connector = None

    def __init__(self, plan):
        self.plan, self.noops, self.requests = plan, [], []

    def get_fact(self, cls, mode, _stdin):
        assert cls is OrthancFirewallPlan
        self.requests.append((mode, json.loads(_stdin.getvalue())))
        return self.plan

    def noop(self, message):
        self.noops.append(message)


def _run(plan, **kwargs):
    fake = FakeHost(plan)
    outcomes.clear()
    with ctx_host.use(fake):
        commands = list(firewall.restrict._inner(**{"ports": [8042, 4242], "cidrs": ["10.0.0.0/8"], **kwargs}))
    return fake, commands


def test_no_change_is_a_no_op():
    fake, commands = _run({"backend": "ufw", "changed": False, "problems": []})
    assert commands == [] and fake.noops == ["firewall (ufw): rules already as wanted"]
    assert fake.requests == [("check", {"ports": [4242, 8042], "cidrs": ["10.0.0.0/8"], "backend": "auto",
                                        "enable": False, "allow_empty": False, "ssh_port": None, "docker": True})]


def test_change_applies_with_the_same_request():
    fake, commands = _run({"backend": "nftables", "changed": True, "problems": []}, cidrs=["10.0.0.1", "fd00::/8"])
    (apply,) = commands
    assert isinstance(apply, FunctionCommand) and apply.args[0] == "apply"
    assert json.loads(apply.args[1])["cidrs"] == ["10.0.0.1/32", "fd00::/8"]


@pytest.mark.parametrize("plan", [
    {"error": "ufw is installed but inactive: not enabling it", "unsupported": True},
    {"backend": "ufw", "changed": True, "problems": ["ufw rule 'allow 8042/tcp' (not ours) opens port 8042"]},
])
def test_a_state_that_cannot_be_reached_fails_the_host_never_no_changes(plan):
    """Issue #17: on its own in an operator's deploy, restrict must not end as "No changes" with ports open."""
    fake, commands = _run(plan)
    assert fake.noops == []
    (fail,) = commands
    assert isinstance(fail, FunctionCommand)
    logged = []
    fake.log_styled = lambda message, **kwargs: logged.append(message)
    assert fail.function(None, fake, *fail.args) is False  # False fails the host
    reason = plan.get("error") or plan["problems"][0]
    assert logged == [f"firewall not changed: {reason}"]
    found = outcomes.for_host("pacs-01")
    assert found["firewall"]["status"] == "not-compliant"
    assert found["compliance"]["status"] == "not-compliant", "reports: not-compliant (left as it was), not failed"


def test_no_host_firewall_still_filters_docker_then_fails_the_host_not_compliant():
    blocked = "no host firewall found (firewalld, ufw, nftables, iptables): nothing changed"
    fake, commands = _run({"backend": "none", "changed": True, "input_changed": False, "problems": [],
                           "blocked": blocked, "docker": {"changed": True}})
    (apply,) = commands
    assert apply.args[0] == "apply"
    fake, commands = _run({"backend": "none", "changed": False, "problems": [], "blocked": blocked})
    (fail,) = commands
    logged = []
    fake.log_styled = lambda message, **kwargs: logged.append(message)
    assert fail.function(None, fake, *fail.args) is False and fake.noops == []
    assert logged == [f"firewall not changed: {blocked}"]
    assert outcomes.for_host("pacs-01")["compliance"]["status"] == "not-compliant"


def test_removal_needs_no_ports_or_cidrs():
    fake, commands = _run({"changed": True, "removed": ["nftables"]}, ports=[], cidrs=[], present=False)
    assert fake.requests[0][0] == "remove-check" and commands[0].args[0] == "remove"


@pytest.mark.parametrize("kwargs", [{"cidrs": ["10.0.0.300/8"]}, {"cidrs": []}, {"ports": [70000]},
                                    {"ports": [2222], "ssh_port": 2222}, {"ssh_port": 0}, {"backend": "pf"}])
def test_bad_input_is_refused_before_asking_the_host(kwargs):
    fake = FakeHost({})
    with ctx_host.use(fake):
        (command,) = firewall.restrict._inner(**{"ports": [8042], "cidrs": ["10.0.0.0/8"], **kwargs})
    # This host fails with the cause; raised, the error would stop every other host's later steps (#17).
    assert command.function is verdict._fail and command.args[1].startswith("firewall: ")
    assert fake.requests == []


def test_iptables_in_use_ignores_the_jumps_a_disabled_ufw_leaves(remote):
    disabled_ufw = ":INPUT ACCEPT [0:0]\n-A INPUT -j ufw-before-logging-input\n-A INPUT -j ufw-before-input\n" \
                   "-A INPUT -j ufw-after-input\n-A INPUT -j ufw-reject-input\n"
    assert remote["iptables_in_use"](disabled_ufw) is False
    assert remote["iptables_in_use"](disabled_ufw + "-A INPUT -p tcp --dport 22 -j ACCEPT\n") is True
    assert remote["iptables_in_use"](":INPUT DROP [0:0]\n") is True
    assert remote["iptables_in_use"](":INPUT ACCEPT [0:0]\n") is False


class CallbackHost(FakeHost):
    """What `_apply` touches: the op's connector arguments and the host's commands, answered from a script."""

    def __init__(self, answers, connector=None, op_args=None):
        super().__init__({})
        self.connector, self.current_op_global_arguments = connector, op_args or {}
        self.answers, self.commands, self.logged = list(answers), [], []

    def run_shell_command(self, command, **kwargs):
        from pyinfra.connectors.util import CommandOutput, OutputLine

        self.commands.append((str(command).rsplit(" ", 1)[-1], json.loads(kwargs["_stdin"].getvalue()), kwargs))
        ok, answer = self.answers.pop(0)
        return ok, CommandOutput([OutputLine("stdout", json.dumps(answer))])

    def log_styled(self, message, **kwargs):
        self.logged.append(message)


REQUEST = json.dumps({"ports": [8042], "cidrs": ["10.0.0.0/8"], "backend": "auto", "enable": True,
                      "allow_empty": False, "ssh_port": None})


def _ssh_connector():
    from pyinfra.connectors.ssh import SSHConnector

    return SSHConnector.__new__(SSHConnector)


def test_callback_commands_carry_the_operations_connector_arguments():
    """Issue #17: a fleet reached as a sudo user gets its firewall (the callback's command runs with _sudo)."""
    fake = CallbackHost([(True, {"backend": "ufw", "notes": []})], op_args={"_sudo": True, "_sudo_user": "root"})
    outcomes.clear()
    assert firewall._apply(None, fake, "apply", REQUEST, 120) is True
    (mode, payload, kwargs), = fake.commands
    assert mode == "apply" and kwargs["_sudo"] is True and kwargs["_sudo_user"] == "root"
    assert "token" not in payload, "no SSH session (here: no SSH connector), nothing to confirm"


def test_a_change_over_ssh_is_confirmed_with_a_fresh_connection(monkeypatch):
    monkeypatch.setattr(firewall.fresh_ssh, "connect_again", lambda host: None)
    fake = CallbackHost([(True, {"backend": "ufw", "notes": [], "armed": "systemd timer t"}),
                         (True, {"confirmed": True})], connector=_ssh_connector())
    outcomes.clear()
    assert firewall._apply(None, fake, "apply", REQUEST, 45) is True
    (apply_mode, payload, _), (confirm_mode, confirm, _) = fake.commands
    assert payload["confirm_seconds"] == 45 and len(payload["token"]) == 16
    assert (confirm_mode, confirm) == ("confirm", {"token": payload["token"]})
    assert outcomes.for_host("pacs-01")["firewall"]["status"] == "changed"


def test_a_failed_fresh_connection_reverts_and_fails_the_host_with_one_line(monkeypatch):
    monkeypatch.setattr(firewall.fresh_ssh, "connect_again", lambda host: "TimeoutError: timed out")
    fake = CallbackHost([(True, {"backend": "nftables", "notes": [], "armed": "systemd timer t"}),
                         (True, {"reverted": True})], connector=_ssh_connector())
    outcomes.clear()
    assert firewall._apply(None, fake, "apply", REQUEST, 120) is False
    assert [c[0] for c in fake.commands] == ["apply", "revert"]
    assert fake.logged == ["firewall: a fresh SSH connection failed after the nftables change (TimeoutError: timed "
                           "out); the change was reverted"]
    assert outcomes.for_host("pacs-01")["firewall"]["status"] == "failed"


def test_ufw_with_ipv6_off_plans_no_v6_rules_and_says_so(remote, tmp_path, monkeypatch):
    monkeypatch.setitem(remote, "_read", lambda path: "IPV6=no\n" if path == "/etc/default/ufw" else None)
    assert remote["_ufw_desired"]([8042], ["10.0.0.0/8"], ["fd00::/64"])["v6"] == []
    assert remote["ufw_notes"](["fd00::/64"]) == [
        "IPv6 networks fd00::/64 not added: ufw has IPv6 off (IPV6=no in /etc/default/ufw), so it neither filters "
        "nor allows IPv6 on Orthanc's ports"]


def test_ufw_apply_adds_allows_before_denies(remote, monkeypatch):
    """A deny never goes in ahead of its allows: a failing allow would otherwise cut every client off."""
    rules: dict = {"/etc/ufw/user.rules": [], "/etc/ufw/user6.rules": []}
    issued = []

    def must(argv, what, timeout=60, stdin=None):
        issued.append(" ".join(argv[1:]))
        fam = "/etc/ufw/user6.rules" if ":" in argv[argv.index("from") + 1] else "/etc/ufw/user.rules"
        rules[fam].append({"comment": "x"})
        return ""

    monkeypatch.setitem(remote, "must", must)
    monkeypatch.setitem(remote, "_ufw_tuples", lambda path: rules[path])
    monkeypatch.setitem(remote, "_read", lambda path: "IPV6=yes\n" if path == "/etc/default/ufw" else None)
    remote["ufw_apply"]([8042], ["10.0.0.0/8"], ["fd00::/64"])
    assert [line.split(" proto")[0] for line in issued] == ["prepend allow", "deny", "prepend allow", "deny"]


class FakeFirewalld:
    """firewall-cmd's view of the orthanc-harden policy, permanent and runtime, changed by the commands issued."""

    def __init__(self, permanent, runtime):
        self.policies = {True: permanent, False: runtime}
        self.issued = []

    def policy(self, permanent):
        found = self.policies[permanent]
        return None if found is None else {"settings": {}, "rules": list(found)}

    def must(self, argv, what, timeout=60, stdin=None):
        self.issued.append(argv)
        permanent = "--permanent" in argv
        option = argv[-1]
        if option.startswith("--add-rich-rule="):
            self.policies[permanent].append(option.split("=", 1)[1])
        elif option.startswith("--remove-rich-rule="):
            self.policies[permanent].remove(option.split("=", 1)[1])
        elif option.startswith("--delete-policy="):
            self.policies[permanent] = None
        return ""


@pytest.mark.parametrize("before", [
    {"permanent": ["old"], "runtime": ["old"]},  # our policy held other networks: they come back
    {"permanent": None, "runtime": None},  # the change created the policy: it goes again
])
def test_firewalld_restore_puts_the_policy_back(remote, monkeypatch, before):
    fake = FakeFirewalld(["new-allow", "new-drop"], ["new-allow", "new-drop"])
    monkeypatch.setitem(remote, "_fw_policy", fake.policy)
    monkeypatch.setitem(remote, "must", fake.must)
    snap = {"backend": "firewalld",
            "permanent": before["permanent"] and {"settings": {}, "rules": before["permanent"]},
            "runtime": before["runtime"] and {"settings": {}, "rules": before["runtime"]}}
    remote["restore"](snap)
    assert fake.policies[True] == before["permanent"]
    assert fake.policies[False] == (before["runtime"] or [])  # runtime rules gone, no reload needed


def test_ssh_ports_found_on_the_host(remote, monkeypatch):
    outputs = {
        "-T": "port 2222\nlistenaddress [::]:2222\nlistenaddress 0.0.0.0:2222\n",
        "-Hltnp": 'LISTEN 0 128 0.0.0.0:2222 0.0.0.0:* users:(("sshd",pid=39,fd=3))\n'
                  "LISTEN 0 200 0.0.0.0:8042 0.0.0.0:*\n"
                  'LISTEN 0 128 10.0.0.5:2200 0.0.0.0:* users:(("sshd",pid=39,fd=5))\n',
        "sshd.socket": "Listen=[::]:22 (Stream)\nActiveState=inactive\n\nActiveState=inactive\n",
    }
    monkeypatch.setitem(remote, "run", lambda argv, **kw: (0, outputs.get(argv[-1], outputs.get(argv[1], "")), ""))
    monkeypatch.setitem(remote, "session_port", lambda: 2022)
    monkeypatch.setattr(remote["shutil"], "which", lambda name: "/usr/bin/" + name)
    # A disabled ssh.socket's port 22 is not open; a session through a forwarded port and the extra one count.
    assert remote["ssh_ports"](2300) == [2022, 2200, 2222, 2300]


def test_the_sessions_port_is_found_through_sudo(remote, monkeypatch):
    """sudo resets the environment: the program (pid 300) under sudo (200) finds SSH_CONNECTION in the login
    shell (100) that started sudo."""
    import io

    procs = {300: (b"PATH=/usr/bin\0SUDO_USER=deploy\0", 200), 200: (b"PATH=/usr/bin\0", 100),
             100: (b"USER=deploy\0SSH_CONNECTION=10.0.0.9 51000 10.0.0.5 2022\0", 90)}

    def fake_open(path, mode="r"):
        pid = int(path.split("/")[2])
        environ, ppid = procs[pid]
        if path.endswith("/environ"):
            return io.BytesIO(environ)
        return io.StringIO(f"{pid} (python3) S {ppid} 1 1 0")

    monkeypatch.setitem(remote, "open", fake_open)
    monkeypatch.setattr(remote["os"], "getpid", lambda: 300)
    assert remote["session_port"]() == 2022


def test_a_foreign_ufw_rule_blocks_input_only_and_docker_is_still_filtered(remote, monkeypatch):
    """A foreign allow-all ufw rule makes INPUT unreachable, as an inactive ufw does: the Docker part is planned all
    the same (it filters forwarded traffic, which INPUT never sees) and the host stays not compliant."""
    problem = "ufw rule 'allow 8042/tcp' (not ours) opens port 8042 to every source"
    monkeypatch.setitem(remote, "detect", lambda: ("ufw", True))
    monkeypatch.setitem(remote, "ufw_plan", lambda ports, v4, v6: {"changed": True, "problems": [problem],
                                                                   "rules": [], "notes": []})
    monkeypatch.setitem(remote, "docker_plan", lambda v4, v6: {
        "changed": True, "bindings": [{"host_port": 8042}], "rules": ["iptables:"], "notes": [],
        "current_rules": [], "wanted_rules": ["iptables -A ORTHANC-HARDEN-DOCKER -j DROP"], "files": {}})
    request = {"ports": [8042], "cidrs": ["10.0.0.0/8"], "docker": True}
    result = remote["plan"](request)
    assert result["blocked"] == problem and result["input_changed"] is False and result["docker"]["changed"]
    with pytest.raises(remote["Unsupported"], match="not ours"):
        remote["plan"]({**request, "docker": False})
