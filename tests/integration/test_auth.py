"""operations.auth.authentication on a real lab host: fix, idempotence, no leak, rollback, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.conftest import ROOT, run_cli
from tests.integration.conftest import fresh_lab, ssh_to

pytestmark = pytest.mark.lab

LAB = "pytest-auth"
CANARY = 'Canary-5e2a-"q\\*/x//é'
USERS = {"radiology": CANARY, "reader": "Second-Canary-77b"}
DEPLOY = """
import json, os
from pyinfra import host
from pyinfra.api import HiddenValue
from orthanc_harden.operations import auth

_users = {k: HiddenValue(v) for k, v in json.loads(os.environ["OH_TEST_USERS"]).items()}
auth.authentication(name="Orthanc: authentication on", users=_users,
                    probe_url=host.data.get("orthanc_harden_probe_url"))
"""


@pytest.fixture(scope="module")
def auth_lab(lab):  # `lab` first: the engine and images exist
    yield fresh_lab(LAB, 1, 0, 27200)
    run_cli("lab", "down", "--lab", LAB)


def _ssh(data: dict):
    return ssh_to(data, data["hosts"][0])


def _sh(client, command: str) -> str:
    _, stdout, _ = client.exec_command(command)
    out = stdout.read().decode()
    stdout.channel.recv_exit_status()
    return out


def _deploy(tmp_path, users=USERS, verbosity="-vv") -> subprocess.CompletedProcess:
    path = tmp_path / "deploy.py"
    path.write_text(DEPLOY)
    env = {**os.environ, "ORTHANC_HARDEN_LAB": LAB, "OH_TEST_USERS": json.dumps(users)}
    return subprocess.run([sys.executable, "-m", "pyinfra", "-y", *verbosity.split(), "inventories/lab.py", str(path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)


def _status(url: str, auth=None) -> int:
    auth = tuple(part.encode("utf-8") for part in auth) if auth else None  # Orthanc compares UTF-8
    return requests.get(f"{url}/system", auth=auth, timeout=10).status_code


def _service(client) -> str:
    return _sh(client, "systemctl show -p MainPID,ActiveEnterTimestamp,NRestarts orthanc")


def test_authentication_fix_is_tight_idempotent_and_silent(auth_lab, tmp_path):
    url = f"http://127.0.0.1:{auth_lab['hosts'][0]['http_port']}"
    client = _ssh(auth_lab)
    assert _status(url) == 200, "the lab host must start vulnerable"
    before = {name: _sh(client, f"cat /etc/orthanc/{name}") for name in ("orthanc.json", "credentials.json")}

    seen_args: list[str] = []
    stop = threading.Event()

    def watch_ps():  # every remote process's arguments while the run is going on
        watcher = _ssh(auth_lab)
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline:
            seen_args.append(_sh(watcher, "ps -eo args"))
            time.sleep(0.05)
        watcher.close()

    thread = threading.Thread(target=watch_ps)
    thread.start()
    try:
        first = _deploy(tmp_path)
    finally:
        stop.set()
        thread.join()
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Orthanc healthy after restart: anonymous 401, user radiology 200" in first.stdout + first.stderr
    assert len(seen_args) > 3

    assert _status(url) == 401
    for user, password in USERS.items():
        assert _status(url, (user, password)) == 200, user
    assert _status(url, ("radiology", "wrong")) == 401

    # Only the intended lines changed; every comment is still there.
    after = {name: _sh(client, f"cat /etc/orthanc/{name}") for name in before}
    old_lines, new_lines = before["orthanc.json"].splitlines(), after["orthanc.json"].splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [('  "AuthenticationEnabled" : false,', '  "AuthenticationEnabled" : true,')]
    creds_old, creds_new = before["credentials.json"].splitlines(), after["credentials.json"].splitlines()
    assert [line for line in creds_new if line not in creds_old] == [
        '    "radiology" : "Canary-5e2a-\\"q\\\\*/x//é",', '    "reader" : "Second-Canary-77b"']
    assert [line for line in creds_old if line not in creds_new] == ['    // "alice" : "alicePassword"']
    modes = _sh(client, "stat -c '%n %a %U:%G' /etc/orthanc/credentials.json /etc/orthanc/*backup")
    assert modes.split("\n")[0] == "/etc/orthanc/credentials.json 640 root:orthanc"
    assert all(line.split()[1] == "600" for line in modes.strip().split("\n")[1:])
    assert _sh(client, "find /etc/orthanc -perm -o=r -name '*backup*'") == ""

    # Second run: nothing changes, nothing restarts.
    service = _service(client)
    second = _deploy(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Orthanc healthy after restart" not in second.stdout + second.stderr
    assert "authentication already on" in second.stdout + second.stderr
    assert _service(client) == service
    as_json = _deploy(tmp_path, verbosity="--json")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    assert json.loads(as_json.stdout)["results"]["totals"]["success"] == 0  # nothing changed

    for channel in (first.stdout, first.stderr, second.stdout, second.stderr, as_json.stdout, as_json.stderr,
                    *seen_args):
        assert "Canary-5e2a" not in channel and "Second-Canary-77b" not in channel
    client.close()


def test_failed_health_gate_restores_and_reports(auth_lab, tmp_path):
    url = f"http://127.0.0.1:{auth_lab['hosts'][0]['http_port']}"
    client = _ssh(auth_lab)
    # A site hook that refuses the new configuration at start stands in for "Orthanc cannot start after the change".
    _sh(client, "mkdir -p /etc/systemd/system/orthanc.service.d && printf '[Service]\\nExecStartPre=/bin/sh -c "
                "\"! grep -q Rotated-Pw /etc/orthanc/credentials.json\"\\n' "
                "> /etc/systemd/system/orthanc.service.d/refuse.conf && systemctl daemon-reload")
    before = _sh(client, "sha256sum /etc/orthanc/*.json")
    try:
        proc = _deploy(tmp_path, users={"radiology": "Rotated-Pw-1"}, verbosity="-v")
        assert proc.returncode != 0
        output = proc.stdout + proc.stderr
        assert "health gate failed" in output and "configuration restored and Orthanc restarted with it" in output
        assert _sh(client, "sha256sum /etc/orthanc/*.json") == before
        assert _sh(client, "systemctl is-active orthanc").strip() == "active"
        assert _status(url, ("radiology", CANARY)) == 200  # running with the old configuration
        assert "Rotated-Pw-1" not in output
    finally:
        _sh(client, "rm -rf /etc/systemd/system/orthanc.service.d && systemctl daemon-reload")
        client.close()


@pytest.mark.parametrize("setup, users, expected", [
    ("printf '{ \"Oops\" : 1 \"x\" : 2 }' > /etc/orthanc/zz-broken.json", USERS, "zz-broken.json does not parse"),
    ("printf '{ \"HttpPort\" : 8042 }' > /etc/orthanc/zz-dup.json", USERS, "key HttpPort is defined in"),
    ("true", {}, "no users: refusing to enable authentication"),
])
def test_bad_input_changes_nothing(auth_lab, tmp_path, setup, users, expected):
    client = _ssh(auth_lab)
    _sh(client, setup)
    before = _sh(client, "sha256sum /etc/orthanc/*.json; systemctl show -p MainPID orthanc")
    try:
        proc = _deploy(tmp_path, users=users, verbosity="-v")
        assert proc.returncode != 0
        assert expected in proc.stdout + proc.stderr
        assert _sh(client, "sha256sum /etc/orthanc/*.json; systemctl show -p MainPID orthanc") == before
    finally:
        _sh(client, "rm -f /etc/orthanc/zz-broken.json /etc/orthanc/zz-dup.json")
        client.close()


def _deploy_file(ref: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyinfra", "-y", "-v", "--data", f"orthanc_harden_users_ref={ref}",
                           "inventories/lab.py", "deploys/auth.py"], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env={**os.environ, "ORTHANC_HARDEN_LAB": LAB})


def test_unresolvable_secret_fails_the_host_before_any_change(auth_lab):
    client = _ssh(auth_lab)
    before = _sh(client, "sha256sum /etc/orthanc/*.json; systemctl show -p MainPID orthanc")
    proc = _deploy_file("env:OH_NOT_SET_ANYWHERE")
    assert proc.returncode != 0
    assert "[lab-pkg-1] env:OH_NOT_SET_ANYWHERE: environment variable OH_NOT_SET_ANYWHERE is not set" in (
        proc.stdout + proc.stderr)
    assert _sh(client, "sha256sum /etc/orthanc/*.json; systemctl show -p MainPID orthanc") == before
    client.close()


def test_deploy_with_a_file_reference_is_a_no_op_on_a_fixed_host(auth_lab, tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    users.chmod(0o600)
    client = _ssh(auth_lab)
    service = _service(client)
    proc = _deploy_file(f"file:{users}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "authentication already on" in proc.stdout + proc.stderr
    assert _service(client) == service
    assert "Canary-5e2a" not in proc.stdout + proc.stderr
    client.close()
