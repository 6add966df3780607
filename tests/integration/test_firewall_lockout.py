"""No SSH lockout and no silent "No changes" from the firewall (issue #17), on real lab hosts.

sshd on 2222 only with an inactive ufw that remediate enables; a fresh connection that really fails (a stale ufw
rule denying SSH, activated by enabling ufw) and is reverted; the revert the host fires by itself when nobody
confirms; ufw with IPV6=no and an IPv6 network in the allow list; a ufw command failing half-way; and
`firewall.restrict` imported into an operator's own deploy on an inactive ufw. Traffic goes to 127.0.0.1 and to
the lab's own containers on the lab's docker network only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import requests

from orthanc_harden.remote import program
from tests.conftest import ROOT, run_cli
from tests.integration.conftest import SUBSET_INVENTORY, fresh_lab, ssh_to
from tests.integration.conftest import run_on as _sh
from tests.integration.hosts_firewall import connect, sshd_on_port

pytestmark = pytest.mark.lab

# Overridable so that parallel runs each use a lab and ports of their own.
LAB = os.environ.get("OH_LOCKOUT_TEST_LAB", "pytest-lockout")
PORT_BASE = int(os.environ.get("OH_LOCKOUT_TEST_PORT_BASE", "31600"))
CANARY = "Canary-lockout-5e1b-\"x'"
SNAPSHOT = "/var/lib/orthanc-harden/firewall-revert/snapshot.json"


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    data = fresh_lab(LAB, 3, 0, PORT_BASE)
    work = tmp_path_factory.mktemp("lockout")
    (work / "inventory.py").write_text(SUBSET_INVENTORY)
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    data["work"] = work
    data["users_ref"] = f"file:{users}"
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _env(fw, entry, data: dict) -> dict:
    return {**os.environ, "ORTHANC_HARDEN_LAB": LAB, "ORTHANC_HARDEN_LAB_USERS_REF": fw["users_ref"],
            "OH_TEST_HOSTS": entry["name"], "OH_TEST_DATA": json.dumps({entry["name"]: data})}


def _pyinfra(fw, entry, deploy: str, data: dict, *flags: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", *flags, str(fw["work"] / "inventory.py"), deploy],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=_env(fw, entry, data))
    return proc.returncode, proc.stdout + proc.stderr


def _remediate(fw, entry, data: dict) -> tuple[int, str, dict]:
    report = fw["work"] / "report.json"
    report.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "orthanc_harden.cli", "remediate", str(fw["work"] / "inventory.py"),
                           "--json", str(report)], capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env=_env(fw, entry, data))
    output = proc.stdout + proc.stderr
    assert CANARY not in output
    return proc.returncode, output, json.loads(report.read_text()) if report.exists() else {}


def _host_lines(output: str, entry) -> list[str]:
    return [line.strip() for line in output.splitlines() if f"[{entry['name']}]" in line]


def _allowed(entry) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{entry['http_port']}/system", timeout=5).status_code in (200, 401)
    except requests.RequestException:
        return False


def _from_other_container(fw, source, target, port: int = 8042) -> bool:
    client = ssh_to(fw, source)
    try:
        return _sh(client, f"curl -s -o /dev/null --max-time 3 http://{target['ip']}:{port}/system")[0] == 0
    finally:
        client.close()


def _ufw_state(client) -> str:
    return _sh(client, "ufw status verbose; cat /etc/ufw/user.rules /etc/ufw/user6.rules /etc/ufw/ufw.conf")[1]


def _gateway(client) -> str:
    return _sh(client, "ip route | awk '/^default/ {print $3}'")[1].strip()


def test_sshd_on_2222_only_ufw_enabled_by_remediate_and_ssh_still_connects(fw):
    entry = fw["hosts"][0]
    reach = sshd_on_port(fw, entry, 2222, fw["work"] / "known_hosts_2222")
    client = connect(fw, entry["ip"], 2222, fw["work"] / "known_hosts_2222")
    listening = _sh(client, "ss -Hltn")[1]
    assert ":2222 " in listening and ":22 " not in listening, listening
    assert _sh(client, "ufw status")[1].strip() == "Status: inactive"
    client.close()
    data = {**reach, "orthanc_harden_firewall_enable": True}

    code, output, report = _remediate(fw, entry, data)
    assert code == 0, output[-3000:]
    (row,) = report["hosts"]
    assert any(c.startswith("firewall: Orthanc ports restricted with ufw") for c in row["changes"]), row

    fresh = connect(fw, entry["ip"], 2222, fw["work"] / "known_hosts_2222")  # SSH still connects, on 2222
    status = _sh(fresh, "ufw status")[1]
    starts = _sh(fresh, "journalctl --no-pager -o cat -u orthanc | grep -c '^Started orthanc' || true")[1]
    assert "Status: active" in status
    assert any(line.startswith("2222/tcp ") and "ALLOW" in line and "Anywhere" in line
               for line in status.splitlines()), status
    assert not any(line.startswith("22/tcp ") for line in status.splitlines()), "nothing listens on 22: not opened"
    assert _sh(fresh, f"test ! -e {SNAPSHOT} && ! systemctl is-active orthanc-harden-firewall-revert.timer")[0] == 0
    fresh.close()

    code, output, report = _remediate(fw, entry, data)
    assert code == 0, output[-3000:]
    (row,) = report["hosts"]
    assert row["status"] == "compliant" and row["changes"] == [], row
    again = connect(fw, entry["ip"], 2222, fw["work"] / "known_hosts_2222")
    assert _sh(again, "journalctl --no-pager -o cat -u orthanc | grep -c '^Started orthanc' || true")[1] == starts, \
        "a second run must restart nothing"
    again.close()


def test_a_fresh_connection_that_fails_puts_the_firewall_back_and_fails_the_host(fw):
    """A real cause: the inactive ufw holds an old rule denying the control node's address (ufw would merge a rule
    for the SSH port itself into the tool's allow). Enabling ufw lets the running session on (ufw accepts
    established connections) but refuses every new one from there."""
    entry = fw["hosts"][1]
    client = ssh_to(fw, entry)
    old_rule = f"deny from {_gateway(client)} comment old-lockdown"
    assert _sh(client, f"ufw {old_rule}")[0] == 0
    before = _ufw_state(client)
    assert "Status: inactive" in before
    client.close()

    started = time.monotonic()
    code, output = _pyinfra(fw, entry, "deploys/firewall.py", {"orthanc_harden_firewall_enable": True,
                                                               "orthanc_harden_firewall_confirm_timeout": 60})
    assert code != 0, output[-3000:]
    failures = [line for line in _host_lines(output, entry) if "firewall:" in line]
    assert len(failures) == 1, output[-3000:]
    assert "a fresh SSH connection failed after the ufw change" in failures[0], failures
    assert failures[0].endswith("the change was reverted"), failures
    assert "Traceback" not in output
    assert time.monotonic() - started < 60, "reverted at once over the running session, not by the timer"

    client = ssh_to(fw, entry)  # SSH reachable again
    assert _ufw_state(client) == before, "the firewall is back exactly as it was"
    assert _sh(client, f"test ! -e {SNAPSHOT} && ! systemctl is-active orthanc-harden-firewall-revert.timer")[0] == 0
    assert _sh(client, f"ufw --force delete {old_rule.split(' comment')[0]}")[0] == 0
    client.close()


# Without systemd the revert is a detached sleep: the same host, with a PATH that has no systemd-run on it.
NO_SYSTEMD_RUN = ("mkdir -p /tmp/no-systemd-run && for f in /usr/sbin/* /usr/bin/* /sbin/* /bin/*; do "
                  "ln -sf \"$f\" /tmp/no-systemd-run/; done; rm -f /tmp/no-systemd-run/systemd-run")
UFW_STATE = "ufw status verbose; cat /etc/ufw/user.rules /etc/ufw/user6.rules /etc/ufw/ufw.conf"
IPT_RULE = "INPUT -p tcp --dport 9999 -m comment --comment foreign -j ACCEPT"
NFT_STATE = "nft list ruleset; cat /etc/nftables.conf; test -e /etc/orthanc-harden/nftables.nft && echo ours"
REVERTS = {
    # name: (setup, state, teardown, prefix of the remote command, how the revert is armed)
    "ufw-systemd": ("true", UFW_STATE, "true", "", "systemd timer orthanc-harden-firewall-revert.timer"),
    "ufw-no-systemd": (NO_SYSTEMD_RUN, UFW_STATE, "true", "PATH=/tmp/no-systemd-run ", "detached sleep, pid "),
    "iptables": (f"iptables -A {IPT_RULE}", "iptables -S; ip6tables -S", f"iptables -D {IPT_RULE}", "",
                 "systemd timer"),
    # Last: starting nftables flushes the whole ruleset, ufw's chains with it.
    "nftables": ("systemctl enable --now nftables", NFT_STATE, "systemctl disable --now nftables", "",
                 "systemd timer"),
}


@pytest.mark.parametrize("case", list(REVERTS))
def test_the_host_reverts_by_itself_when_nobody_confirms(fw, case):
    """The control node is gone after the change (no confirmation, no revert over SSH): the host puts back exactly
    what the change touched, with its timer (or its detached sleep without systemd), on each backend."""
    setup, state, teardown, prefix, armed = REVERTS[case]
    entry = fw["hosts"][1]
    client = ssh_to(fw, entry)
    assert _sh(client, setup)[0] == 0
    before = _sh(client, state)[1]
    request = {"ports": [8042, 4242], "cidrs": [f"{_gateway(client)}/32"], "backend": "auto",
               "enable": case.startswith("ufw"), "allow_empty": False, "ssh_port": None,
               "token": "0123456789abcdef", "confirm_seconds": 10}
    stdin, stdout, _ = client.exec_command(f"{prefix}python3 -c {_quote(program('firewall'))} apply")
    stdin.write(json.dumps(request))
    stdin.channel.shutdown_write()
    answer = json.loads(stdout.read().decode().strip().splitlines()[-1])
    assert answer.get("armed", "").startswith(armed) and answer["backend"] == case.split("-")[0], answer
    assert _sh(client, state)[1] != before, "the change was made"
    client.close()  # the session that made the change ends, as a lost control node's would
    deadline = time.monotonic() + 60
    client = ssh_to(fw, entry)
    while _sh(client, f"test -e {SNAPSHOT}")[0] == 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert _sh(client, state)[1] == before, "the host put the firewall back"
    if armed.startswith("systemd"):
        journal = _sh(client, "journalctl --no-pager -o cat -u orthanc-harden-firewall-revert.service")[1]
        assert "has been put back" in journal, journal
    assert _sh(client, teardown)[0] == 0
    client.close()


def _quote(text: str) -> str:
    import shlex
    return shlex.quote(text)


def test_restrict_on_an_inactive_ufw_without_enable_fails_at_default_verbosity(fw, tmp_path):
    """Imported into an operator's own deploy (no compliance step after it): never "No changes", exit 0."""
    entry = fw["hosts"][2]
    deploy = tmp_path / "own_deploy.py"
    deploy.write_text("from orthanc_harden.operations import firewall\n"
                      "firewall.restrict(name='Orthanc ports', ports=[8042, 4242], cidrs=['10.1.0.0/16'])\n")
    client = ssh_to(fw, entry)
    before = _ufw_state(client)
    assert "Status: inactive" in before
    code, output = _pyinfra(fw, entry, str(deploy), {})
    assert code != 0, output[-3000:]
    assert (f"[{entry['name']}] firewall not changed: ufw is installed but inactive: not enabling it"
            in output), output[-3000:]
    assert f"[{entry['name']}] No changes" not in output
    assert _ufw_state(client) == before

    # The packaged run reports such a host as not compliant (left as it was, for the stated reason), not failed.
    code, output, report = _remediate(fw, entry, {"orthanc_harden_firewall_enable": False})
    (row,) = report["hosts"]
    assert code != 0 and row["status"] == "not-compliant", output[-3000:]
    assert "firewall not changed: ufw is installed but inactive" in row["reason"], row
    assert _ufw_state(client) == before
    client.close()


def test_ufw_with_ipv6_off_adds_allows_first_skips_v6_and_puts_back_after_a_failed_command(fw):
    entry, other = fw["hosts"][2], fw["hosts"][1]
    client = ssh_to(fw, entry)
    assert _sh(client, "sed -i 's/^IPV6=yes/IPV6=no/' /etc/default/ufw && grep -qx IPV6=no /etc/default/ufw")[0] == 0
    cidrs = [f"{_gateway(client)}/32", "fd00:4242::/64"]
    data = {"orthanc_harden_allowed_cidrs": cidrs, "orthanc_harden_firewall_enable": True}

    code, output = _pyinfra(fw, entry, "deploys/firewall.py", data)
    assert code == 0, output[-3000:]
    assert (f"[{entry['name']}] Orthanc ports restricted with ufw; IPv6 networks fd00:4242::/64 not added: ufw has "
            "IPv6 off (IPV6=no in /etc/default/ufw)") in output, output[-3000:]
    assert _allowed(entry), "the allowed source still reaches Orthanc"
    assert not _from_other_container(fw, other, entry), "a source outside the allowed networks does not"
    code, output = _pyinfra(fw, entry, "deploys/firewall.py", data)
    assert code == 0 and f"[{entry['name']}] Orthanc ports restricted" not in output, output[-3000:]
    assert "[{}] No changes".format(entry["name"]) in output

    # A ufw command that fails half-way through a change (here: a wrapper ahead of ufw on PATH refusing one new
    # network): the rules go back exactly as they were, so the allowed source keeps its access.
    before = _ufw_state(client)
    wrapper = ("#!/bin/sh\ncase \"$*\" in *10.99.0.0/16*) echo 'ERROR: refused by the test' >&2; exit 1;; esac\n"
               "exec /usr/sbin/ufw \"$@\"\n")
    assert _sh(client, f"printf '%s' {_quote(wrapper)} > /usr/local/sbin/ufw && chmod 0755 /usr/local/sbin/ufw")[0] == 0
    try:
        code, output = _pyinfra(fw, entry, "deploys/firewall.py",
                                {**data, "orthanc_harden_allowed_cidrs": [*cidrs, "10.99.0.0/16"]})
    finally:
        _sh(client, "rm -f /usr/local/sbin/ufw")
    assert code != 0, output[-3000:]
    failures = [line for line in _host_lines(output, entry) if "firewall:" in line]
    assert len(failures) == 1 and "the firewall was put back as it was" in failures[0], output[-3000:]
    assert _ufw_state(client) == before
    assert _allowed(entry) and not _from_other_container(fw, other, entry)
    client.close()
