from __future__ import annotations

import json
import os

import pytest

from orthanc_harden.lab import state
from tests.conftest import TEST_LAB, TEST_PORT_BASE, run_cli, unavailable


@pytest.fixture(scope="session")
def lab() -> dict:
    """The test lab, brought up once per session through the real CLI (3 package hosts, 1 container host)."""
    os.environ["ORTHANC_HARDEN_LAB"] = TEST_LAB
    proc = run_cli("lab", "up", "--lab", TEST_LAB, "--port-base", str(TEST_PORT_BASE))
    if proc.returncode != 0:
        unavailable(f"`orthanc-harden lab up` failed: {proc.stderr.strip().splitlines()[-1:]}")
    data = state.load(state.lab_dir(TEST_LAB))
    assert data is not None, "lab up succeeded but wrote no state"
    return data


def fresh_lab(name: str, hosts: int, containers: int, port_base: int) -> dict:
    """A module's own lab, brought up from scratch: tests change its hosts, and a run that was interrupted would
    otherwise hand the next one hardened hosts (or a broken file) instead of the vulnerable start it asserts."""
    run_cli("lab", "down", "--lab", name)  # fails harmlessly when there is none
    proc = run_cli("lab", "up", "--lab", name, "--hosts", str(hosts), "--containers", str(containers),
                   "--port-base", str(port_base))
    if proc.returncode != 0:
        unavailable(f"lab {name} did not start: {proc.stderr[-300:]}")
    return state.load(state.lab_dir(name))


def with_canary_users(data: dict, lab: str, work, password: str) -> dict:
    """A lab's data with an owner-only users file holding the test's canary password as the store the CLI reads
    (`env`), and the test's work directory (`work`)."""
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": password}))
    users.chmod(0o600)
    data["env"] = {"ORTHANC_HARDEN_LAB": lab, "ORTHANC_HARDEN_LAB_USERS_REF": f"file:{users}"}
    data["work"] = work
    return data


def ssh_to(data: dict, entry: dict):
    """A paramiko client to a lab host, trusting only the lab's known_hosts file."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(data["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=entry["ssh_port"], username="root", key_filename=data["ssh_key"],
                   allow_agent=False, look_for_keys=False, timeout=10)
    return client


def output_of(data: dict, index: int, command: str) -> str:
    """What a shell command on the lab's index-th package host prints (a connection of its own, as root)."""
    client = ssh_to(data, data["hosts"][index])
    try:
        return run_on(client, command)[1]
    finally:
        client.close()


def run_on(client, command: str) -> tuple[int, str]:
    """Run a shell command over a paramiko client: (exit status, stdout and stderr)."""
    _, stdout, stderr = client.exec_command(command)
    out = stdout.read().decode() + stderr.read().decode()
    return stdout.channel.recv_exit_status(), out


# An inventory of an operator's own, as an unrelated deploy would have: chosen lab hosts only (OH_TEST_HOSTS), with
# per-host data on top (OH_TEST_DATA, JSON).
SUBSET_INVENTORY = """
import json, os
from orthanc_harden.lab.inventory import groups
_hosts = os.environ["OH_TEST_HOSTS"].split(",")
_extra = json.loads(os.environ.get("OH_TEST_DATA", "{}"))
package_hosts = [(name, {**data, **_extra.get(name, {})})
                 for name, data in groups(os.environ["ORTHANC_HARDEN_LAB"])["package_hosts"] if name in _hosts]
"""


# strace from the control node (Debian 12, as the lab's hosts), with the libraries it needs beside it: how a test
# sees every program a run starts on a host (following its sshd).
STRACE_FILES = ("/usr/bin/strace", "/lib/x86_64-linux-gnu/libunwind-ptrace.so.0",
                "/lib/x86_64-linux-gnu/libunwind-x86_64.so.8", "/lib/x86_64-linux-gnu/libunwind.so.8")
STRACE = "LD_LIBRARY_PATH=/opt/strace/lib/x86_64-linux-gnu /opt/strace/usr/bin/strace"


def need_strace() -> None:
    """Before a lab is brought up: unavailable when the control node has no strace to lend its hosts."""
    if not all(os.path.exists(f) for f in STRACE_FILES):
        unavailable("needs the control node's strace (Debian 12's, with libunwind) to trace the host's commands")


def install_strace(client) -> None:
    """Copy the control node's strace to a lab host (see `need_strace`)."""
    import io
    import tarfile

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for path in STRACE_FILES:
            tar.add(os.path.realpath(path), arcname=path.lstrip("/"))
    sftp = client.open_sftp()
    sftp.putfo(io.BytesIO(archive.getvalue()), "/root/strace.tar")
    sftp.close()
    code, out = run_on(client, "mkdir -p /opt/strace && tar xf /root/strace.tar -C /opt/strace && rm /root/strace.tar")
    assert code == 0, out


def must_run(client, command: str) -> str:
    """`run_on` for a step a test cannot go on without: its output, or the test fails naming the command."""
    code, out = run_on(client, command)
    assert code == 0, f"lab step failed ({code}): {command}\n{out}"
    return out
