"""Issue #24: a compliant host is checked with one SSH command and one Python start (the probe and the
authentication and firewall plans together), and still every comparison is made: a password rotated in the store
and an allowed network changed in the settings after a compliant run are applied by the next run, which is then
followed by one with zero changes and zero restarts. Counted on the host: its sshd's "Starting session" lines
(LogLevel VERBOSE) and every program started under sshd (strace)."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import requests

from tests.conftest import run_cli
from tests.integration.conftest import (STRACE, SUBSET_INVENTORY, fresh_lab, install_strace, must_run, need_strace,
                                        ssh_to, with_canary_users)

pytestmark = pytest.mark.lab

LAB = "h24-compliant-check"
PORT_BASE = 3300
CANARY = "Canary-h24-check-\"x'9"
ROTATED = "Canary-h24-rotated-'q\"4"
EXTRA_NETWORK = "192.0.2.0/24"  # TEST-NET-1: only ever written into the host's rules, never contacted
TRACE = "/root/sshd-execve.trace"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    need_strace()
    data = fresh_lab(LAB, 1, 0, PORT_BASE)
    work = tmp_path_factory.mktemp("compliant-check")
    with_canary_users(data, LAB, work, CANARY)
    inventory = work / "inventory.py"
    inventory.write_text(SUBSET_INVENTORY)
    data["inventory"] = str(inventory)
    data["env"].update(OH_TEST_HOSTS=data["hosts"][0]["name"])
    client = ssh_to(data, data["hosts"][0])
    install_strace(client)
    must_run(client, "grep -q '^LogLevel VERBOSE' /etc/ssh/sshd_config || "
                     "echo 'LogLevel VERBOSE' >> /etc/ssh/sshd_config; systemctl reload ssh")
    data["client"] = client
    yield data
    client.close()
    run_cli("lab", "down", "--lab", LAB)
    shutil.rmtree(work, ignore_errors=True)


def _remediate(host, extra: dict | None = None) -> dict:
    """One remediate of the host, traced: its report row, the SSH sessions and programs it started on the host,
    and Orthanc's starts meanwhile. Neither password ever shows in the output or the report."""
    client = host["client"]
    must_run(client, f"rm -f {TRACE}; pid=$(systemctl show -p MainPID --value ssh); "
                     f"({STRACE} -f -p $pid -e trace=execve -o {TRACE} </dev/null >/dev/null 2>&1 &); "
                     "for i in $(seq 50); do grep -q TracerPid:.[1-9] /proc/$pid/status && exit 0; sleep 0.1; done; "
                     "exit 1")
    report = host["work"] / "report.json"
    report.unlink(missing_ok=True)
    env = dict(host["env"], OH_TEST_DATA=json.dumps({host["hosts"][0]["name"]: extra or {}}))
    started = time.time()  # the host's clock is this machine's: its journal is read for this window alone
    proc = run_cli("remediate", host["inventory"], "--json", str(report), env=env, timeout=600)
    ended = time.time()
    must_run(client, "pkill -x strace; for i in $(seq 50); do pgrep -x strace >/dev/null || exit 0; sleep 0.1; done; "
                     "exit 1")
    time.sleep(0.2)
    for channel in (proc.stdout, proc.stderr, report.read_text()):
        assert CANARY not in channel and ROTATED not in channel
    trace = must_run(client, f"cat {TRACE}")
    executed = [line.split('execve("', 1)[1].split('"', 1)[0] for line in trace.splitlines()
                if 'execve("' in line and "= 0" in line.rsplit(")", 1)[-1]]
    journal = "\n".join(
        line.split(" ", 1)[1] for line in must_run(
               client, f"journalctl --no-pager -o short-unix --since @{int(started)} -u ssh -u orthanc").splitlines()
        if line[:1].isdigit() and started <= float(line.split(" ", 1)[0]) <= ended)
    (row,) = json.loads(report.read_text())["hosts"]
    return {"exit": proc.returncode, "row": row, "output": proc.stdout[-2000:] + proc.stderr[-2000:],
            "sessions": journal.count("Starting session:"), "pythons": sum(p.endswith("/python3") for p in executed),
            "restarts": journal.count("Started orthanc")}


def _compliant_and_quiet(run: dict) -> None:
    assert run["exit"] == 0, run["output"]
    assert run["row"]["status"] == "compliant" and run["row"]["changes"] == [], run["row"]
    assert run["restarts"] == 0


def _status(host, password: str) -> int:
    port = host["hosts"][0]["http_port"]
    return requests.get(f"http://127.0.0.1:{port}/system", auth=("radiology", password), timeout=10).status_code


def test_a_compliant_host_is_checked_with_one_command_and_one_python(host):
    first = _remediate(host)
    assert first["exit"] == 0 and first["row"]["status"] == "changed", first["output"]
    second = _remediate(host)
    _compliant_and_quiet(second)
    # Before issue #24's last step: 3 and 3 (the probe, then the authentication and the firewall plans).
    assert second["sessions"] == 1, second
    assert second["pythons"] == 1, second


def test_a_password_rotated_in_the_store_is_still_applied(host):
    _compliant_and_quiet(_remediate(host))
    users = host["work"] / "users.json"
    users.write_text(json.dumps({"radiology": ROTATED}))
    rotated = _remediate(host)
    assert rotated["exit"] == 0 and rotated["row"]["status"] == "changed", rotated["output"]
    assert any(c.startswith("auth:") for c in rotated["row"]["changes"]), rotated["row"]
    assert rotated["restarts"] == 1
    assert (_status(host, ROTATED), _status(host, CANARY)) == (200, 401)
    after = _remediate(host)
    _compliant_and_quiet(after)
    assert after["sessions"] == 1


def test_an_allowed_network_changed_in_the_settings_is_still_applied(host):
    _compliant_and_quiet(_remediate(host))
    wider = {"orthanc_harden_allowed_cidrs": [host["subnet"], EXTRA_NETWORK]}
    assert EXTRA_NETWORK not in must_run(host["client"], "ufw status")
    changed = _remediate(host, wider)
    assert changed["exit"] == 0 and changed["row"]["status"] == "changed", changed["output"]
    assert [c for c in changed["row"]["changes"] if c.startswith("firewall:")], changed["row"]
    assert changed["restarts"] == 0
    assert EXTRA_NETWORK in must_run(host["client"], "ufw status")
    after = _remediate(host, wider)
    _compliant_and_quiet(after)
    assert after["sessions"] == 1
