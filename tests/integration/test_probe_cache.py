"""Issue #24: a compliant host's check near the floor. The probe keeps the Orthanc binary's version in a root-only
state file keyed by the binary's identity: the second audit does not start Orthanc (seen by strace on the host's
sshd, following every command the audits run), a binary replaced in place is asked again, a cache file that is not
root's 0600 is ignored, and the version reported is the same every time."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.conftest import run_cli
from tests.integration.conftest import STRACE, fresh_lab, install_strace, must_run, need_strace, ssh_to

LAB = "benchx-probe-cache"
CACHE = "/var/lib/orthanc-harden/probe-cache.json"
TRACE = "/root/sshd-execve.trace"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    need_strace()
    data = fresh_lab(LAB, 1, 0, 5100)
    work = tmp_path_factory.mktemp("probe-cache")
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": "probe-cache-" + os.urandom(6).hex()}))
    users.chmod(0o600)
    env = {"ORTHANC_HARDEN_LAB": LAB, "ORTHANC_HARDEN_LAB_USERS_REF": f"file:{users}"}
    client = ssh_to(data, data["hosts"][0])
    install_strace(client)
    # The compliant state the cache is for: authentication on, ufw restricting Orthanc's ports.
    proc = run_cli("remediate", "inventories/lab.py", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    yield {"data": data, "env": env, "client": client, "work": work}
    client.close()
    run_cli("lab", "down", "--lab", LAB)
    shutil.rmtree(work, ignore_errors=True)


def _traced_audit(host) -> tuple[str, list[str]]:
    """An audit of the host while strace follows its sshd (and so every command the audit starts there): the
    version the audit reports and every program executed on the host."""
    client = host["client"]
    must_run(client, f"rm -f {TRACE}; pid=$(systemctl show -p MainPID --value ssh); "
                     f"({STRACE} -f -p $pid -e trace=execve -o {TRACE} </dev/null >/dev/null 2>&1 &); "
                     "for i in $(seq 50); do grep -q TracerPid:.[1-9] /proc/$pid/status && exit 0; sleep 0.1; done; "
                     "exit 1")
    report = host["work"] / "audit.json"
    proc = run_cli("audit", "inventories/lab.py", "--json", str(report), env=host["env"], timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # Detached from outside the traced tree, then bounded: strace flushes its log as it exits.
    must_run(client, "pkill -x strace; for i in $(seq 50); do pgrep -x strace >/dev/null || exit 0; sleep 0.1; done; "
                     "exit 1")
    time.sleep(0.2)
    trace = must_run(client, f"cat {TRACE}")
    executed = [line.split('execve("', 1)[1].split('"', 1)[0] for line in trace.splitlines()
                if 'execve("' in line and "= 0" in line.rsplit(")", 1)[-1]]
    instance = json.loads(report.read_text())["instances"][0]
    assert instance["status"] == "compliant", instance
    return instance["version"], executed


def _stat(host, path: str) -> str:
    return must_run(host["client"], f"stat -c '%u:%g %a' {path}").strip()


def test_the_second_audit_does_not_start_orthanc(host):
    must_run(host["client"], f"rm -f {CACHE}")
    first, executed = _traced_audit(host)
    assert first == "1.10.1"
    assert "/usr/sbin/Orthanc" in executed, "the trace must see the probe start Orthanc when there is no cache"
    assert _stat(host, CACHE) == "0:0 600"
    assert _stat(host, os.path.dirname(CACHE)) == "0:0 700"
    second, executed = _traced_audit(host)
    assert second == first
    assert any(p.endswith("/python3") for p in executed), "the trace must see the probe itself"
    assert "/usr/sbin/Orthanc" not in executed
    assert not any(p.endswith(("/dpkg", "/apt-mark", "/ufw")) for p in executed), executed
    assert executed.count("/usr/bin/dpkg-query") == 1, "dpkg-query -L is not run again"


def test_a_binary_replaced_in_place_is_asked_again(host):
    _traced_audit(host)  # the cache holds the current binary
    # The way a package manager replaces it: a new file (new inode) renamed over the old one, same path and content.
    must_run(host["client"], "cp -p /usr/sbin/Orthanc /usr/sbin/Orthanc.new && "
                             "mv /usr/sbin/Orthanc.new /usr/sbin/Orthanc && systemctl restart orthanc")
    version, executed = _traced_audit(host)
    assert version == "1.10.1"
    assert "/usr/sbin/Orthanc" in executed
    version, executed = _traced_audit(host)
    assert "/usr/sbin/Orthanc" not in executed


@pytest.mark.parametrize("spoil", ["chown nobody", "chmod 0644", "chmod g+w dir"])
def test_a_cache_file_that_is_not_roots_alone_is_ignored(host, spoil):
    _traced_audit(host)
    client = host["client"]
    # A planted lie the probe would report if it believed the file.
    must_run(client, f"sed -i 's/1\\.10\\.1/9.9.9/g' {CACHE} && grep -q 9.9.9 {CACHE}")
    target = os.path.dirname(CACHE) if spoil.endswith("dir") else CACHE
    must_run(client, f"{spoil.removesuffix(' dir')} {target}")
    try:
        version, executed = _traced_audit(host)
        assert version == "1.10.1"
        assert "/usr/sbin/Orthanc" in executed
        if spoil.endswith("dir"):
            assert "9.9.9" in must_run(client, f"cat {CACHE}"), "nothing is written into an untrusted directory"
    finally:
        must_run(client, f"chmod 0700 {os.path.dirname(CACHE)}; rm -f {CACHE}")


def test_a_planted_value_in_a_root_only_file_is_believed(host):
    """The counterpart of the spoiled files (and what shows the trace can see a cached answer): the same lie in a
    root:root 0600 file is reported, so ownership and mode alone keep it out above."""
    _traced_audit(host)
    must_run(host["client"], f"sed -i 's/1\\.10\\.1/9.9.9/g' {CACHE}")
    try:
        version, executed = _traced_audit(host)
        assert version == "9.9.9"
        assert "/usr/sbin/Orthanc" not in executed
    finally:
        must_run(host["client"], f"rm -f {CACHE}")
