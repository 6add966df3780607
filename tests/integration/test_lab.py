"""The foundation lab, proven on real components: systemd hosts with Debian's Orthanc, SSH, Docker API."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import docker
import json5
import pydicom
import pytest
import requests

from orthanc_harden.lab import seed, state
from tests.integration.conftest import ssh_to
from tests.conftest import ROOT, TEST_LAB, TEST_PORT_BASE, run_cli

pytestmark = pytest.mark.lab


def _ssh(lab: dict, entry: dict):
    return ssh_to(lab, entry)


def _every_orthanc(lab: dict) -> list[dict]:
    return lab["hosts"] + lab["containers"]


def test_fleet_shape(lab):
    assert [h["name"] for h in lab["hosts"]] == ["lab-pkg-1", "lab-pkg-2", "lab-pkg-3"]
    assert [c["name"] for c in lab["containers"]] == ["lab-docker-1"]


def test_second_up_reuses_hosts(lab):
    proc = run_cli("lab", "up", "--lab", TEST_LAB, "--port-base", str(TEST_PORT_BASE))
    assert proc.returncode == 0, proc.stderr
    assert "creating" not in proc.stderr and "debootstrap" not in proc.stderr
    again = state.load(state.lab_dir(TEST_LAB))
    assert [h["container_id"] for h in again["hosts"]] == [h["container_id"] for h in lab["hosts"]]
    assert again["containers"][0]["container_id"] == lab["containers"][0]["container_id"]


def test_pyinfra_reaches_every_package_host_over_ssh(lab):
    proc = subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", "inventories/lab.py", "--limit", "package_hosts",
         "exec", "--", "Orthanc --version | head -n1; systemctl is-active orthanc"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr
    # pyinfra pads host names to the inventory's longest (the engine host's), hence \s+.
    for entry in lab["hosts"]:
        assert re.search(rf"\[{re.escape(entry['name'])}\]\s+Orthanc 1\.10\.1", output), output[-2000:]
        assert re.search(rf"\[{re.escape(entry['name'])}\]\s+active", output), output[-2000:]


def test_package_hosts_are_explicitly_vulnerable(lab):
    for entry in lab["hosts"]:
        ssh = _ssh(lab, entry)
        try:
            _, stdout, _ = ssh.exec_command("cat /etc/orthanc/orthanc.json")
            config = json5.loads(stdout.read().decode())
            _, stdout, _ = ssh.exec_command(
                "cat /etc/orthanc/credentials.json; stat -c '%a %U:%G' /etc/orthanc/credentials.json")
            creds_text = stdout.read().decode()
        finally:
            ssh.close()
        assert config["RemoteAccessAllowed"] is True
        assert config["AuthenticationEnabled"] is False
        body, mode_line = creds_text.rsplit("}", 1)
        assert json5.loads(body + "}")["RegisteredUsers"] == {}
        assert mode_line.strip() == "640 root:orthanc"


def test_anonymous_system_answers_200_everywhere(lab):
    for entry in _every_orthanc(lab):
        response = requests.get(f"http://127.0.0.1:{entry['http_port']}/system", timeout=10)
        assert response.status_code == 200, entry["name"]
        assert response.json()["Version"] == "1.10.1"


def test_container_orthanc_listed_through_docker_api(lab):
    client = docker.DockerClient(base_url=lab["docker_host"])
    found = client.containers.list(filters={"label": f"orthanc-harden.lab={TEST_LAB}"})
    orthancs = [c for c in found if (c.attrs["Config"].get("Entrypoint") or [""])[0].endswith("/Orthanc")]
    assert [c.name for c in orthancs] == [lab["containers"][0]["container"]]
    container = orthancs[0]
    exit_code, output = container.exec_run(["/usr/sbin/Orthanc", "--version"])
    assert exit_code == 0 and output.decode().splitlines()[0].split()[-1] == "1.10.1"
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert mounts["/var/lib/orthanc/db"]["Type"] == "volume"
    assert mounts["/var/lib/orthanc/db"]["Name"] == lab["containers"][0]["volume"]
    assert mounts["/etc/orthanc"]["Type"] == "bind"
    config = json5.loads(container.exec_run(["cat", "/etc/orthanc/orthanc.json"]).output.decode())
    assert config["RemoteAccessAllowed"] is True and config["AuthenticationEnabled"] is False


def test_seeded_dicom_instances_are_stored(lab):
    for entry in _every_orthanc(lab):
        base = f"http://127.0.0.1:{entry['http_port']}"
        stored = requests.get(f"{base}/instances", timeout=10).json()
        assert len(entry["seeded_instances"]) == seed.INSTANCES_PER_HOST
        assert set(entry["seeded_instances"]) <= set(stored), entry["name"]
        expected_uids = {pydicom.dcmread(io.BytesIO(seed.make_instance(entry["name"], n))).SOPInstanceUID
                         for n in range(1, seed.INSTANCES_PER_HOST + 1)}
        stored_uids = set()
        for instance in entry["seeded_instances"]:
            ds = pydicom.dcmread(io.BytesIO(requests.get(f"{base}/instances/{instance}/file", timeout=10).content))
            assert ds.PatientID == f"OHLAB-{entry['name']}"
            stored_uids.add(ds.SOPInstanceUID)
        assert stored_uids == expected_uids


def test_status_reports_exposure(lab):
    proc = run_cli("lab", "status", "--lab", TEST_LAB, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["name"]: (r["state"], r["anonymous_system"]) for r in rows} == {
        "lab-pkg-1": ("running", 200), "lab-pkg-2": ("running", 200), "lab-pkg-3": ("running", 200),
        "lab-docker-1": ("running", 200),
    }
