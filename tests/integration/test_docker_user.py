"""DOCKER-USER rules for Orthanc containers published on every address, proven with clients from outside the host.

The lab host runs a Docker engine of its own (docker.io from Debian, inside the lab container) with an Orthanc
container published on 0.0.0.0 and an unrelated web server published beside it. Two network namespaces made here,
each joined to the lab host by a veth pair, are the outside world: `ohdu-out` (10.231.7.2, not allowed) and
`ohdu-in` (10.231.8.2, allowed). Their HTTP goes through Docker's real DNAT and FORWARD path, which traffic from the
host itself never takes. The tool logs in as the unprivileged `deploy` with password-less sudo, as fleets are
reached. Nothing but those namespaces and the lab's own containers is contacted.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from orthanc_harden.lab.seed import make_instance
from orthanc_harden.remote import program
from tests.conftest import ROOT, run_cli, unavailable
from tests.integration.conftest import SUBSET_INVENTORY, fresh_lab, ssh_to
from tests.integration import variants
from tests.integration.conftest import run_on as _sh

pytestmark = pytest.mark.lab

LAB = os.environ.get("OH_DOCKER_USER_TEST_LAB", "pytest-dockeruser")
PORT_BASE = int(os.environ.get("OH_DOCKER_USER_TEST_PORT_BASE", "24600"))
ORTHANC_PORT, DICOM_PORT, OTHER_PORT = 18042, 14242, 19000
CLIENTS = {"out": ("ohdu-out", "ohduo", "10.231.7"), "in": ("ohdu-in", "ohdui", "10.231.8")}
ALLOWED = ["10.231.8.0/24"]
CHAIN = "ORTHANC-HARDEN-DOCKER"

# The lab host runs under Docker's default seccomp profile, which refuses keyctl(2) and pivot_root(2) to the
# nested runc: these two runc options do without them. Lab plumbing only; the product never runs containers.
RUNC_WRAPPER = """#!/usr/bin/python3
import os
import sys

args = sys.argv[1:]
for i, arg in enumerate(args):
    if arg in ("create", "run"):
        args[i + 1:i + 1] = ["--no-new-keyring", "--no-pivot"]
        break
os.execv("/usr/bin/runc", ["runc"] + args)
"""
DAEMON_JSON = {"runtimes": {"lab": {"path": "/usr/local/sbin/runc-lab"}}, "default-runtime": "lab"}


def _host_sh(lab, command: str, timeout: int = 120) -> str:
    client = ssh_to(lab, lab["hosts"][0])
    try:
        client.get_transport().set_keepalive(10)
        code, out = _sh(client, f"timeout {timeout} sh -c {shlex.quote(command)}")
    finally:
        client.close()
    assert code == 0, f"{command!r} on the lab host: {out[-800:]}"
    return out


def _wait(what: str, check, seconds: int = 90):
    deadline = time.monotonic() + seconds
    for _ in range(seconds * 2):
        if check():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {seconds} s")


def _pid(container: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container], capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()


def _clients_up(container: str) -> None:
    """Each outside client: a namespace of its own, a veth pair into the lab host's network namespace."""
    pid = _pid(container)
    for namespace, veth, net in CLIENTS.values():
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)
        for argv in (["ip", "netns", "add", namespace],
                     ["ip", "link", "add", f"{veth}0", "type", "veth", "peer", "name", f"{veth}1"],
                     ["ip", "link", "set", f"{veth}1", "netns", pid],
                     ["ip", "link", "set", f"{veth}0", "netns", namespace],
                     ["ip", "-n", namespace, "addr", "add", f"{net}.2/24", "dev", f"{veth}0"],
                     ["ip", "-n", namespace, "link", "set", f"{veth}0", "up"],
                     ["nsenter", "-t", pid, "-n", "ip", "addr", "add", f"{net}.1/24", "dev", f"{veth}1"],
                     ["nsenter", "-t", pid, "-n", "ip", "link", "set", f"{veth}1", "up"]):
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if proc.returncode != 0:
                unavailable(f"outside client {namespace}: {' '.join(argv)}: {proc.stderr.strip()}")


def _clients_down() -> None:
    for namespace, _, _ in CLIENTS.values():
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def _status(client: str, port: int, path: str = "/system") -> str:
    """The HTTP status an outside client gets from the lab host's published port; "000": no answer (dropped)."""
    namespace, _, net = CLIENTS[client]
    proc = subprocess.run(["ip", "netns", "exec", namespace, "curl", "--noproxy", "*", "-s", "-o", "/dev/null",
                           "-w", "%{http_code}", "--max-time", "4", f"http://{net}.1:{port}{path}"],
                          capture_output=True, text=True, timeout=30)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def docker_host(tmp_path_factory):
    if subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=30).returncode != 0:
        unavailable("network namespaces cannot be made here (`ip netns` failed)")
    lab = fresh_lab(LAB, 1, 1, PORT_BASE)
    host = lab["hosts"][0]
    image = subprocess.run(["docker", "inspect", "-f", "{{.Config.Image}}", lab["containers"][0]["container"]],
                           capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    client = ssh_to(lab, host)
    variants.sudo_login(client)
    sftp = client.open_sftp()
    with sftp.open("/usr/local/sbin/runc-lab", "w") as handle:
        handle.write(RUNC_WRAPPER)
    sftp.chmod("/usr/local/sbin/runc-lab", 0o755)
    _sh(client, "mkdir -p /etc/docker")
    with sftp.open("/etc/docker/daemon.json", "w") as handle:
        handle.write(json.dumps(DAEMON_JSON))
    sftp.close()
    client.close()
    try:
        _host_sh(lab, "DEBIAN_FRONTEND=noninteractive apt-get -qq update && DEBIAN_FRONTEND=noninteractive "
                      "apt-get -qq install -y --no-install-recommends docker.io iptables >/tmp/apt.log 2>&1 "
                      "|| { tail -5 /tmp/apt.log; exit 1; }", timeout=900)
    except AssertionError as err:
        unavailable(f"docker.io could not be installed in the lab host: {err}")
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    load = subprocess.run(["docker", "exec", "-i", host["container"], "docker", "load"], stdin=save.stdout,
                          capture_output=True, text=True, timeout=600)
    save.wait(timeout=60)
    assert load.returncode == 0, load.stderr
    _host_sh(lab, f"docker run -d --restart unless-stopped --name pacs -p {ORTHANC_PORT}:8042 -p {DICOM_PORT}:4242 "
                  f"{image} && docker run -d --restart unless-stopped --name other -w /tmp -p {OTHER_PORT}:8000 "
                  f"--entrypoint python3 {image} -m http.server 8000")
    _wait("the nested Orthanc answering", lambda: "200" in _host_sh(
        lab, f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{ORTHANC_PORT}/system || true"))
    upload = subprocess.run(["docker", "exec", "-i", host["container"], "curl", "-sf", "--data-binary", "@-",
                             f"http://127.0.0.1:{ORTHANC_PORT}/instances"], input=make_instance(LAB, 1),
                            capture_output=True, timeout=60)
    assert upload.returncode == 0, upload.stderr
    _clients_up(host["container"])
    inventory = tmp_path_factory.mktemp("dockeruser") / "inventory.py"
    inventory.write_text(SUBSET_INVENTORY)
    lab["inventory"] = str(inventory)
    lab["image"] = image
    yield lab
    _clients_down()
    run_cli("lab", "down", "--lab", LAB)


def _deploy(lab, **data) -> tuple[int, str]:
    name = lab["hosts"][0]["name"]
    # Reached as fleets are: an unprivileged login with sudo (the firewall and Docker commands run through it).
    settings = {"orthanc_harden_allowed_cidrs": ALLOWED, "orthanc_harden_firewall_backend": "iptables",
                "ssh_user": "deploy", "_sudo": True, **data}
    env = {**os.environ, "ORTHANC_HARDEN_LAB": LAB, "OH_TEST_HOSTS": name,
           "OH_TEST_DATA": json.dumps({name: settings})}
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "-v", lab["inventory"], "deploys/firewall.py"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def _ours(lab) -> str:
    return _host_sh(lab, f"iptables-save -t filter | grep -e '{CHAIN}' || true; ls /etc/orthanc-harden "
                         "/etc/systemd/system 2>/dev/null | grep -e docker-user || true")


def _unit_done(lab) -> bool:
    """The unit has run its script since Docker (re)started: Docker's own start leaves a moment before it."""
    state = _host_sh(lab, "systemctl is-active orthanc-harden-docker-user.service || true; "
                          "iptables -S DOCKER-USER 1 || true")
    return state.startswith("active") and f"-j {CHAIN}" in state


def _instances(client: str) -> str:
    namespace, _, net = CLIENTS[client]
    return subprocess.run(["ip", "netns", "exec", namespace, "curl", "--noproxy", "*", "-s", "--max-time", "4",
                           f"http://{net}.1:{ORTHANC_PORT}/instances"], capture_output=True, text=True,
                          timeout=30).stdout


def _filtered(lab) -> None:
    assert _status("out", ORTHANC_PORT) == "000", "the Orthanc container still answers a client outside the list"
    assert _status("out", DICOM_PORT, "/") == "000", "Orthanc's published DICOM port still takes connections"
    assert _status("in", ORTHANC_PORT) == "200", "an allowed client lost Orthanc"
    assert _status("out", OTHER_PORT, "/") == "200", "another published port was filtered too"


def test_docker_user_filters_published_orthanc_from_outside_clients(docker_host):
    lab = docker_host
    assert _status("out", ORTHANC_PORT) == "200" and _status("in", ORTHANC_PORT) == "200"
    assert _status("out", OTHER_PORT, "/") == "200"
    stored = json.loads(_instances("in"))
    assert len(stored) == 1

    # A host firewall the tool may not use (ufw installed but inactive): Docker's part is done all the same, and
    # the host stays not compliant for INPUT.
    _host_sh(lab, "ufw --force disable")
    code, out = _deploy(lab, orthanc_harden_firewall_backend="auto", orthanc_harden_firewall_enable=False)
    assert code != 0 and "INPUT not changed: ufw is installed but inactive" in out, out[-3000:]
    assert f"Docker-published Orthanc ports {DICOM_PORT}, {ORTHANC_PORT} filtered in DOCKER-USER" in out, out[-3000:]
    _filtered(lab)

    code, out = _deploy(lab)
    assert code == 0, out[-3000:]
    assert "Orthanc ports restricted with iptables" in out and "filtered in DOCKER-USER" not in out, out[-3000:]
    _filtered(lab)
    assert json.loads(_instances("in")) == stored, "Orthanc's DICOM instances changed"
    rules = _ours(lab)
    assert "-A DOCKER-USER -m comment --comment orthanc-harden -j ORTHANC-HARDEN-DOCKER" in rules
    assert "docker-user.sh" in rules and "orthanc-harden-docker-user.service" in rules

    code, again = _deploy(lab)
    assert code == 0, again[-3000:]
    assert "filtered in DOCKER-USER" not in again and "rules already as wanted" in again, again[-3000:]
    assert _ours(lab) == rules

    # The probe (the audit's reader) sees which published ports the chain closes.
    probe = subprocess.run(["docker", "exec", "-i", lab["hosts"][0]["container"], "python3", "-"],
                           input=program("probe"), capture_output=True, text=True, timeout=120)
    assert json.loads(probe.stdout)["docker"]["closed"] == [DICOM_PORT, ORTHANC_PORT]

    # Docker recreates its chains when it starts: the unit brings ours back after it.
    _host_sh(lab, "systemctl restart docker")
    _wait("the unit run again after the Docker restart", lambda: _unit_done(lab))
    _wait("Orthanc back after the Docker restart", lambda: _status("in", ORTHANC_PORT) == "200")
    _filtered(lab)

    # A reboot of the lab host (a new network namespace, empty tables): the unit starts with docker.service.
    subprocess.run(["docker", "restart", "-t", "20", lab["hosts"][0]["container"]], check=True, timeout=120)
    _wait("the lab host's engine back after the reboot", lambda: subprocess.run(
        ["docker", "exec", lab["hosts"][0]["container"], "docker", "ps", "-q", "-f", "name=pacs"],
        capture_output=True, text=True, timeout=30).stdout.strip() != "", seconds=120)
    _clients_up(lab["hosts"][0]["container"])
    _wait("the unit run after the reboot", lambda: _unit_done(lab), seconds=120)
    _wait("Orthanc back after the reboot", lambda: _status("in", ORTHANC_PORT) == "200", seconds=120)
    _filtered(lab)
    assert json.loads(_instances("in")) == stored

    code, out = _deploy(lab, orthanc_harden_firewall_remove=True)
    assert code == 0, out[-3000:]
    assert "docker-user" in out, out[-3000:]
    assert _ours(lab).strip() == "", "removal left something of the Docker part behind"
    assert _status("out", ORTHANC_PORT) == "200" and _status("out", OTHER_PORT, "/") == "200"
    code, again = _deploy(lab, orthanc_harden_firewall_remove=True)
    assert code == 0 and "no orthanc-harden rules to remove" in again, again[-3000:]
