"""`lab up`/`lab down` on a throwaway lab of their own, and the bad-input paths: one line, non-zero, nothing left."""

from __future__ import annotations

import glob
import socket

import docker
import pytest

from orthanc_harden.lab import state
from tests.conftest import run_cli

pytestmark = pytest.mark.lab

LAB = "pytest-lifecycle"
PORT_BASE = 26200


def _labelled(client: docker.DockerClient, lab: str) -> dict[str, list]:
    selector = {"label": f"{state.LABEL}={lab}"}
    return {
        "containers": client.containers.list(all=True, filters=selector),
        "volumes": client.volumes.list(filters=selector),
        "networks": client.networks.list(filters=selector),
    }


def _one_line_error(proc) -> str:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def client(lab) -> docker.DockerClient:  # the session lab proves the engine and images exist
    return docker.DockerClient(base_url=lab["docker_host"])


def test_down_removes_exactly_the_lab(client, lab):
    foreign = client.volumes.create("ohlab-pytest-foreign", labels={"keep": "me"})
    try:
        up = run_cli("lab", "up", "--lab", LAB, "--hosts", "1", "--containers", "1", "--port-base", str(PORT_BASE))
        assert up.returncode == 0, up.stderr
        made = _labelled(client, LAB)
        assert (len(made["containers"]), len(made["volumes"]), len(made["networks"])) == (2, 1, 1)

        down = run_cli("lab", "down", "--lab", LAB)
        assert down.returncode == 0, down.stderr
        assert _labelled(client, LAB) == {"containers": [], "volumes": [], "networks": []}
        assert state.load(state.lab_dir(LAB)) is None
        client.volumes.get("ohlab-pytest-foreign")  # not the lab's: still there
        session = _labelled(client, lab["lab"])
        assert len(session["containers"]) == 4  # the other lab is untouched
    finally:
        foreign.remove(force=True)


def test_down_without_a_lab_is_one_clear_line():
    line = _one_line_error(run_cli("lab", "down", "--lab", "pytest-never-up"))
    assert "no lab named 'pytest-never-up' exists" in line


def test_taken_port_is_refused_before_anything_is_made(client):
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", PORT_BASE + 11))  # lab-pkg-1's Orthanc HTTP port
    blocker.listen(1)
    try:
        proc = run_cli("lab", "up", "--lab", LAB, "--hosts", "1", "--containers", "0", "--port-base", str(PORT_BASE))
    finally:
        blocker.close()
    line = _one_line_error(proc)
    assert f"port 127.0.0.1:{PORT_BASE + 11} is already in use" in line and "lab-pkg-1" in line
    left = _labelled(client, LAB)
    assert left["containers"] == [] and left["volumes"] == []
    run_cli("lab", "down", "--lab", LAB)  # the network may exist from an earlier step; tidy either way


def test_unreachable_engine_is_one_clear_line():
    proc = run_cli("lab", "up", "--lab", LAB, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock",
                                                  "ORTHANC_HARDEN_LAB_ENGINE_AUTOSTART": "0"})
    line = _one_line_error(proc)
    assert "no Docker engine answers at unix:///nonexistent/docker.sock" in line


def test_failed_debootstrap_leaves_nothing_behind(client):
    before = {tag for image in client.images.list() for tag in image.tags}
    # A mirror on a closed loopback port: debootstrap fails fast, and no new image may appear.
    proc = run_cli("lab", "up", "--lab", LAB, "--hosts", "1", "--containers", "0", "--port-base", str(PORT_BASE),
                   "--mirror", "http://127.0.0.1:9/debian", timeout=600)
    line = _one_line_error(proc)
    assert "debootstrap failed" in line
    after = {tag for image in client.images.list() for tag in image.tags}
    assert after == before
    assert glob.glob("/var/tmp/orthanc-harden-rootfs-*") == []
    assert _labelled(client, LAB)["containers"] == []
    run_cli("lab", "down", "--lab", LAB)
