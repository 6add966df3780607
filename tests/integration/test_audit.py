"""`orthanc-harden audit` on the real lab: right findings, read-only (proven), bad hosts get their own row."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import docker
import pytest

from orthanc_harden.remote import program
from tests.integration.conftest import ssh_to
from tests.conftest import ROOT, TEST_LAB, run_cli

pytestmark = pytest.mark.lab


def _ssh(lab: dict, entry: dict):
    return ssh_to(lab, entry)


def _run(ssh, command: str) -> str:
    _, stdout, stderr = ssh.exec_command(command)
    output = stdout.read().decode()
    assert stdout.channel.recv_exit_status() == 0, stderr.read().decode()
    return output


def _host_snapshot(lab: dict) -> dict:
    snapshot = {}
    for entry in lab["hosts"]:
        ssh = _ssh(lab, entry)
        try:
            snapshot[entry["name"]] = (
                _run(ssh, "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum"),
                _run(ssh, "systemctl show -p MainPID,ActiveEnterTimestamp,NRestarts orthanc ssh"),
            )
        finally:
            ssh.close()
    client = docker.DockerClient(base_url=lab["docker_host"])
    for container in client.containers.list(all=True, filters={"label": f"orthanc-harden.lab={TEST_LAB}"}):
        attrs = container.attrs
        snapshot[container.name] = (attrs["State"]["StartedAt"], attrs["RestartCount"], attrs["Image"],
                                    json.dumps(attrs["Config"], sort_keys=True),
                                    json.dumps(attrs["HostConfig"], sort_keys=True))
    return snapshot


def _audit(*args: str) -> tuple[int, dict, str]:
    proc = run_cli("audit", *args, "--json", "-", env={"ORTHANC_HARDEN_LAB": TEST_LAB}, timeout=600)
    text = proc.stdout
    report = json.loads(text[text.index("\n{") + 1:]) if "\n{" in text else json.loads(text[text.index("{"):])
    return proc.returncode, report, proc.stderr


def test_audit_finds_every_vulnerable_orthanc_and_changes_nothing(lab):
    before = _host_snapshot(lab)
    code, report, _ = _audit("inventories/lab.py")
    after = _host_snapshot(lab)
    assert after == before, "the audit changed a file under /etc, a container or restarted a service"

    assert code == 1, "vulnerable fleet: exit status 1 (findings)"
    rows = {row["instance"] if row["kind"] == "container" else row["host"]: row for row in report["instances"]}
    expected = {h["name"] for h in lab["hosts"]} | {c["container"] for c in lab["containers"]}
    assert set(rows) == expected
    for name, row in rows.items():
        failed = {f["id"] for f in row["findings"] if f["status"] == "fail"}
        assert row["version"] == "1.10.1", name
        assert row["status"] == "findings" and row["compliant"] is False, name
        assert row["config"]["effective"]["RemoteAccessAllowed"] is True
        assert row["config"]["effective"]["AuthenticationEnabled"] is False
        assert {"ORTH-002", "ORTH-108"} <= failed, (name, failed)
        assert "ORTH-001" not in failed  # 1.10.1 is above 1.5.8: the exposure is configuration, not version
        assert row["probe"]["anonymous_status"] == 200
    for entry in lab["hosts"]:
        row = rows[entry["name"]]
        assert row["kind"] == "package" and row["instance"] == "orthanc.service"
        assert "ORTH-005" in {f["id"] for f in row["findings"]}  # no firewall: ports open to all
    container_row = rows[lab["containers"][0]["container"]]
    assert container_row["storage"]["type"] == "named-volume"
    assert report["summary"]["findings"] == len(expected)


def test_bad_hosts_get_their_own_row_and_the_rest_is_audited(lab, tmp_path):
    broken = lab["hosts"][2]
    ssh = _ssh(lab, broken)
    _run(ssh, "printf '{ \"DicomAet\" : \"X\" \"Oops\" : 1 }\\n' > /etc/orthanc/zz-broken.json")
    inventory = tmp_path / "mixed.py"
    inventory.write_text(
        "import os\n"
        "from orthanc_harden.lab.inventory import groups\n"
        f"_lab = groups({TEST_LAB!r})\n"
        "package_hosts = _lab['package_hosts']\n"
        "unreachable = [('gone', {'ssh_hostname': '127.0.0.1', 'ssh_port': 1, 'ssh_connect_retries': 0})]\n"
        "no_orthanc = ['@local']\n"
    )
    try:
        code, report, _ = _audit(str(inventory))
    finally:
        _run(ssh, "rm -f /etc/orthanc/zz-broken.json")
        ssh.close()
    assert code == 2, "a host that could not be audited: exit status 2"
    rows = {row["host"]: row for row in report["instances"]}
    assert rows["gone"]["status"] == "failed" and rows["gone"]["reason"].startswith("unreachable")
    assert rows["@local"]["status"] == "no-orthanc"
    broken_row = rows[broken["name"]]
    failed = {f["id"]: f for f in broken_row["findings"] if f["status"] == "fail"}
    assert "ORTH-007" in failed and "zz-broken.json" in failed["ORTH-007"]["detail"]
    for entry in lab["hosts"][:2]:
        assert rows[entry["name"]]["status"] == "findings"


def test_audit_deploy_runs_through_pyinfra(lab):
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "inventories/lab.py", "--limit", "package_hosts",
                           "deploys/audit.py"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "ORTHANC_HARDEN_LAB": TEST_LAB})
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr
    for entry in lab["hosts"]:
        assert f"[{entry['name']}] orthanc-harden audit: orthanc.service (package, version 1.10.1): findings" in output


CANARY = "Canary-7d41-\"quoted\"-pw"


def test_planted_password_never_leaves_the_host(lab, tmp_path):
    host = lab["hosts"][1]
    ssh = _ssh(lab, host)
    original = _run(ssh, "cat /etc/orthanc/credentials.json")
    planted = '{ "RegisteredUsers" : { "canary" : "Canary-7d41-\\"quoted\\"-pw" } }\n'
    sftp = ssh.open_sftp()
    with sftp.open("/etc/orthanc/credentials.json", "w") as handle:
        handle.write(planted)
    try:
        audit = run_cli("audit", "inventories/lab.py", "--json", "-", env={"ORTHANC_HARDEN_LAB": TEST_LAB})
        deploy = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "-vvv", "inventories/lab.py", "--limit",
                                 host["name"], "deploys/audit.py"], capture_output=True, text=True, timeout=300,
                                cwd=ROOT, env={**os.environ, "ORTHANC_HARDEN_LAB": TEST_LAB})
    finally:
        with sftp.open("/etc/orthanc/credentials.json", "w") as handle:
            handle.write(original)
        sftp.close()
        ssh.close()
    assert deploy.returncode == 0, deploy.stderr[-2000:]
    report = json.loads(audit.stdout[audit.stdout.index("\n{") + 1:])
    row = next(r for r in report["instances"] if r["host"] == host["name"])
    assert row["config"]["users"] == ["canary"]  # the audit did read the planted file
    for channel in (audit.stdout, audit.stderr, deploy.stdout, deploy.stderr):
        assert "Canary-7d41" not in channel


def test_units_are_found_through_drop_ins_once_each(lab):
    """systemd units are narrowed to those whose files mention Orthanc: an ExecStart set in a drop-in of a site
    unit still counts, an alias of orthanc.service is not a second Orthanc, a drop-in for every service still
    finds both."""
    entry = lab["hosts"][0]
    ssh = _ssh(lab, entry)
    plant = (
        "printf '[Service]\\nExecStart=/bin/true\\n' > /etc/systemd/system/pacs-archive.service && "
        "mkdir -p /etc/systemd/system/pacs-archive.service.d && "
        "printf '[Service]\\nExecStart=\\nExecStart=/usr/sbin/Orthanc /etc/orthanc-archive\\n' "
        "> /etc/systemd/system/pacs-archive.service.d/orthanc.conf && "
        "ln -s /lib/systemd/system/orthanc.service /etc/systemd/system/pacs-alias.service && "
        "systemctl daemon-reload")
    every_service = ("mkdir -p /etc/systemd/system/service.d && printf '[Service]\\n# Orthanc site policy\\n' "
                     "> /etc/systemd/system/service.d/site.conf && systemctl daemon-reload")
    try:
        _run(ssh, plant)
        for step in ("narrowed", "every service"):
            probed = json.loads(_run(ssh, f"python3 -c {shlex.quote(program('probe'))}"))
            assert sorted(u["unit"] for u in probed["units"]) == ["orthanc.service", "pacs-archive.service"], step
            code, report, _ = _audit("inventories/lab.py", "--limit", entry["name"])
            units = sorted(row["instance"] for row in report["instances"])
            assert units == ["orthanc.service", "pacs-archive.service"], (step, units)
            _run(ssh, every_service)
    finally:
        _run(ssh, "rm -rf /etc/systemd/system/pacs-archive.service /etc/systemd/system/pacs-archive.service.d "
                  "/etc/systemd/system/pacs-alias.service /etc/systemd/system/service.d && systemctl daemon-reload")
        ssh.close()
