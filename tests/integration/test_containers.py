"""Orthanc containers remediated through the real Docker engine, with images pulled from a local registry on
127.0.0.1: DICOM files and every user setting survive a recreate, authentication comes on, a second run changes
nothing, a broken image is rolled back, and bad input fails one container or engine with a clear message.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from pathlib import Path

import docker
import pytest
import requests

from orthanc_harden.docker import spec
from orthanc_harden.lab import app_images, engine, registry
from orthanc_harden.lab import fleet as fleet_lab
from tests.conftest import run_cli, unavailable
from tests.integration.dockerlab import ENGINES_INVENTORY, clean, config_dir, rows as host_rows, run_engines, wait_http

pytestmark = pytest.mark.lab

LABEL = "orthanc-harden.test"
KIND = "containers"
REGISTRY_PORT = 31530
LOCKED_REGISTRY_PORT = 31531  # wants credentials the control node does not have
NETWORK = "oh-test-containers"
SUBNET = "172.31.251.0/24"
PORTS = {"t-jodogne": 31541, "t-team": 31542, "t-layer": 31543, "t-compose": 31544, "t-rollback": 31546,
         "t-unknown": 31547, "t-unreachable": 31548, "t-viassh": 31550, "t-denied": 31545}
CANARY = "Canary-docker-7c1e-\"x'"


def _clean(client) -> None:
    clean(client, LABEL, KIND)


def _labels(role: str, **extra) -> dict:
    return {LABEL: KIND, f"{LABEL}-role": role, **extra}


def _create(client, name: str, image: str, role: str, binds: list[str] | None = None, env: dict | None = None,
            labels: dict | None = None, network: dict | None = None, start: bool = True, **host) -> str:
    api = client.api
    healthcheck = host.pop("healthcheck", None)
    bindings = host.pop("port_bindings", None) or ({8042: ("127.0.0.1", PORTS[name])} if name in PORTS else None)
    host_config = api.create_host_config(
        binds=binds, port_bindings=bindings,
        restart_policy={"Name": "unless-stopped"}, network_mode=NETWORK, **host)
    endpoint = api.create_endpoint_config(**(network or {}))
    created = api.create_container(
        image, name=name, environment=env, labels=_labels(role, **(labels or {})), host_config=host_config,
        networking_config=api.create_networking_config({NETWORK: endpoint}),
        ports=list(bindings) if bindings else None, healthcheck=healthcheck)
    if start:
        api.start(created["Id"])
    return created["Id"]


def _storage_hashes(client, name: str, directory: str = "/var/lib/orthanc/db") -> dict[str, str]:
    """sha256 of every DICOM attachment file (the index database changes by itself and is left out)."""
    stream, _ = client.containers.get(name).get_archive(directory)
    archive = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
    return {m.name: hashlib.sha256(archive.extractfile(m).read()).hexdigest() for m in archive.getmembers()
            if m.isfile() and m.name.count("/") >= 3}


def _upload(port: int, patient: str) -> str:
    answer = requests.post(f"http://127.0.0.1:{port}/tools/create-dicom",
                           json={"Tags": {"PatientName": patient, "PatientID": patient}}, timeout=30)
    answer.raise_for_status()
    return answer.json()["ID"]


def _instances(port: int) -> list[str]:
    answer = requests.get(f"http://127.0.0.1:{port}/instances", auth=("radiology", CANARY.encode()), timeout=10)
    answer.raise_for_status()
    return sorted(answer.json())


def _engine_data(fleet, role: str, images: dict, url: str = "unix:///var/run/docker.sock") -> dict:
    return {
        "orthanc_harden_docker_url": url,
        "orthanc_harden_docker_filters": {"label": f"{LABEL}-role={role}"},
        "orthanc_harden_docker_images": images,
        "orthanc_harden_users_ref": f"file:{fleet['users']}",
        "orthanc_harden_probe_urls": {name: f"http://127.0.0.1:{port}" for name, port in PORTS.items()},
    }


def _remediate(fleet, engines: dict, *args: str) -> tuple[int, str, dict]:
    return run_engines("remediate", fleet["inventory"], fleet["work"] / "report.json", engines, CANARY, *args)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    work = tmp_path_factory.mktemp("containers")
    try:
        client = engine.ensure_engine(lambda _m: None)
        _clean(client)
        address = registry.start(work / "registry", REGISTRY_PORT, lambda _m: None)
        app_images.build_all(client, lambda _m: None)
        refs = app_images.push_all(client, address, lambda _m: None)
    except Exception as err:  # noqa: BLE001 - any lab failure must fail the module loudly, with its cause
        unavailable(f"local registry or test images: {err}")
    for key in ("jodogne-fixed", "team-fixed"):
        client.images.remove(refs[key])  # the run must pull them from the registry
    client.networks.create(NETWORK, labels={LABEL: KIND}, ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=SUBNET)]))
    client.volumes.create("oh-test-jodogne-db", labels={LABEL: KIND})
    client.volumes.create("oh-test-rebind-db", labels={LABEL: KIND})
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    inventory = work / "engines.py"
    inventory.write_text(ENGINES_INVENTORY)
    fleet = {"client": client, "refs": refs, "work": work, "users": users, "inventory": inventory,
             "registry": address}
    try:
        yield fleet
    finally:
        _clean(client)
        registry.stop(work / "registry")
        registry.stop(work / "locked-registry")


def test_recreate_keeps_data_and_settings_enables_auth_and_is_idempotent(fleet, tmp_path):
    client, refs = fleet["client"], fleet["refs"]
    jodogne_conf = config_dir(tmp_path, 'jodogne', '/var/lib/orthanc/db')
    pre_tool = {p.name: p.read_text() for p in Path(jodogne_conf).glob("*.json")}
    _create(client, "t-jodogne", refs["jodogne-old"], "main",
            binds=[f"{jodogne_conf}:/etc/orthanc",
                   "oh-test-jodogne-db:/var/lib/orthanc/db"],
            env={"SITE": "radiology-east"}, labels={"pacs.site": "east"},
            network={"aliases": ["pacs-east"], "ipv4_address": "172.31.251.10"},
            cap_add=["NET_BIND_SERVICE"], extra_hosts={"ris.example": "10.0.0.5"},
            log_config=docker.types.LogConfig(type="json-file", config={"max-size": "5m"}), mem_limit="512m",
            healthcheck={"Test": ["CMD-SHELL", "test -e /proc/1"], "Interval": 30_000_000_000})
    _create(client, "t-team", refs["team-old"], "main",
            env={"ORTHANC__AUTHENTICATION_ENABLED": "false", "ORTHANC__NAME": "team-custom"},
            labels={"pacs.site": "west"})
    _create(client, "t-layer", refs["jodogne-old"], "main",
            binds=[f"{config_dir(tmp_path, 'layer', '/srv/orthanc-db')}:/etc/orthanc"])
    _create(client, "t-compose", refs["team-old"], "main", env={"ORTHANC__AUTHENTICATION_ENABLED": "false"},
            labels={"com.docker.compose.project": "pacs", "com.docker.compose.service": "orthanc",
                    "com.docker.compose.project.config_files": "/srv/pacs/docker-compose.yml"})
    for name in ("t-jodogne", "t-team", "t-layer", "t-compose"):
        assert wait_http(PORTS[name], want=200) == 200, f"{name} is open before the run"
    uploaded = {name: _upload(PORTS[name], name.upper()) for name in ("t-jodogne", "t-team")}
    hashes = {name: _storage_hashes(client, name) for name in uploaded}
    assert all(hashes.values()), "the DICOM files are on disk before the run"
    before = {name: client.api.inspect_container(name) for name in PORTS if name in
              ("t-jodogne", "t-team", "t-layer", "t-compose")}
    anonymous_volume = next(m["Name"] for m in before["t-team"]["Mounts"] if m["Type"] == "volume")

    engines = {"lab-engine": _engine_data(fleet, "main", {"jodogne": refs["jodogne-fixed"],
                                                          "orthancteam": refs["team-fixed"]})}
    code, output, report = _remediate(fleet, engines)
    row = host_rows(report)["@dockerengine/lab-engine"]
    assert code == 1 and row["status"] == "not-compliant", output[-3000:]
    # The writable-layer and compose containers are reported, with the advice, not recreated.
    assert "t-layer: not upgraded: its DICOM store /srv/orthanc-db is in the container's writable layer" \
        in row["reason"]
    assert "docker cp t-layer:/srv/orthanc-db" in row["reason"]
    assert "t-compose: not recreated: managed by docker compose (project pacs, service orthanc)" in row["reason"]
    assert "/srv/pacs/docker-compose.yml" in row["reason"]

    # #18.5: the pre-tool original is kept once, owner-only; no rolling backup with older passwords.
    kept = {p.name.removesuffix(".orthanc-harden-original"): p
            for p in Path(jodogne_conf).glob("*.orthanc-harden-original")}
    assert kept and all(pre_tool[name] == path.read_text() for name, path in kept.items()), kept
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in kept.values())
    assert not list(Path(jodogne_conf).glob("*.orthanc-harden-backup"))

    after = {name: client.api.inspect_container(name) for name in before}
    for name in ("t-jodogne", "t-team"):
        assert after[name]["Id"] != before[name]["Id"], f"{name} was recreated"
        assert spec.preserved_view(after[name], client.api.inspect_image(after[name]["Image"])) == \
            spec.preserved_view(before[name], client.api.inspect_image(before[name]["Image"])), name
        assert after[name]["Config"]["Image"] != before[name]["Config"]["Image"]
        assert wait_http(PORTS[name], want=401) == 401
        assert wait_http(PORTS[name], auth=("radiology", CANARY.encode()), want=200) == 200
        assert _instances(PORTS[name]) == [uploaded[name]], f"{name}: the same DICOM instance after the upgrade"
        assert _storage_hashes(client, name) == hashes[name], f"{name}: the same DICOM files after the upgrade"
        versions = client.containers.get(name).exec_run(["Orthanc", "--version"]).output.decode()
        assert "1.10.1" in versions.splitlines()[0]
    assert [m["Name"] for m in after["t-team"]["Mounts"] if m["Type"] == "volume"] == [anonymous_volume]
    # Only the image and the authentication settings differ in the environment.
    team_env = set(after["t-team"]["Config"]["Env"]) - set(before["t-team"]["Config"]["Env"])
    assert team_env == {"ORTHANC__AUTHENTICATION_ENABLED=true"}
    assert "ORTHANC__NAME=team-custom" in after["t-team"]["Config"]["Env"]
    assert set(after["t-jodogne"]["Config"]["Env"]) == set(before["t-jodogne"]["Config"]["Env"])
    for name, attrs in after.items():
        assert CANARY not in json.dumps(attrs), f"docker inspect {name} shows the password"
        assert CANARY.encode() not in client.containers.get(name).logs(), f"{name}'s log holds the password"
    users_file = client.containers.get("t-team").exec_run(["stat", "-c", "%a %u", "/etc/orthanc/"
                                                                                 "orthanc-harden-users.json"])
    assert users_file.output.decode().split() == ["400", "0"]
    assert not client.containers.list(all=True, filters={"name": "orthanc-harden-old"}), "old containers removed"
    # In place on the writable-layer container: authentication on without a recreate.
    assert after["t-layer"]["Id"] == before["t-layer"]["Id"]
    assert wait_http(PORTS["t-layer"], want=401) == 401
    assert after["t-compose"]["Id"] == before["t-compose"]["Id"]
    assert after["t-compose"]["State"]["StartedAt"] == before["t-compose"]["State"]["StartedAt"]
    assert wait_http(PORTS["t-compose"]) == 200, "the compose container is left as it was"

    code, output, report = _remediate(fleet, engines)
    row = host_rows(report)["@dockerengine/lab-engine"]
    assert row["changes"] == [], output[-2000:]
    again = {name: client.api.inspect_container(name) for name in before}
    for name in before:
        assert again[name]["Id"] == after[name]["Id"], f"{name}: nothing recreated the second time"
        assert again[name]["State"]["StartedAt"] == after[name]["State"]["StartedAt"], f"{name} not restarted"
    assert "pulled" not in output


def test_published_ports_move_to_the_publish_address_only(fleet, tmp_path):
    """Docker's published ports bypass the host firewall: the recreate moves Orthanc's ports to one address."""
    client, refs = fleet["client"], fleet["refs"]
    client.images.pull(refs["jodogne-fixed"])
    gateway = SUBNET.replace("0/24", "1")  # an address of the test's own network, never contacted
    container_id = _create(client, "t-rebind", refs["jodogne-fixed"], "rebind",
                           binds=[f"{config_dir(tmp_path, 't-rebind', '/var/lib/orthanc/db')}:/etc/orthanc",
                                  "oh-test-rebind-db:/var/lib/orthanc/db"],
                           port_bindings={8042: (gateway, 31551), 4242: (gateway, 31552), 9000: (gateway, 31553)})
    before = client.api.inspect_container(container_id)
    engines = {
        # No probe URL: the gate finds the port where the new container publishes it.
        "rebind": {**_engine_data(fleet, "rebind", {}), "orthanc_harden_docker_publish_address": "127.0.0.1"},
        "everywhere": {**_engine_data(fleet, "rebind", {}), "orthanc_harden_docker_publish_address": "0.0.0.0"},
    }
    code, output, report = _remediate(fleet, engines)
    rows = host_rows(report)
    assert rows["@dockerengine/rebind"]["status"] == "changed", output[-3000:]
    assert "published on 127.0.0.1 only: 4242/tcp from 172.31.251.1:31552, 8042/tcp from 172.31.251.1:31551" \
        in rows["@dockerengine/rebind"]["changes"][0]
    assert rows["@dockerengine/everywhere"]["status"] == "failed" and code == 2
    assert "orthanc_harden_docker_publish_address 0.0.0.0 is every address" in rows["@dockerengine/everywhere"][
        "reason"]
    after = client.api.inspect_container("t-rebind")
    assert after["Id"] != before["Id"]
    assert after["HostConfig"]["PortBindings"] == {
        "8042/tcp": [{"HostIp": "127.0.0.1", "HostPort": "31551"}],
        "4242/tcp": [{"HostIp": "127.0.0.1", "HostPort": "31552"}],
        "9000/tcp": [{"HostIp": gateway, "HostPort": "31553"}]}, "not Orthanc's port: the administrator's"
    assert [m["Name"] for m in after["Mounts"] if m["Type"] == "volume"] == ["oh-test-rebind-db"]
    assert wait_http(31551, want=401) == 401
    assert wait_http(31551, auth=("radiology", CANARY.encode()), want=200) == 200

    code, output, report = _remediate(fleet, {"rebind": engines["rebind"]})
    assert code == 0 and host_rows(report)["@dockerengine/rebind"]["changes"] == [], output[-2000:]
    assert client.api.inspect_container("t-rebind")["Id"] == after["Id"]


def test_broken_image_rolls_back_to_the_old_container_with_its_data(fleet):
    client, refs = fleet["client"], fleet["refs"]
    old_id = _create(client, "t-rollback", refs["team-old"], "rollback",
                     env={"ORTHANC__AUTHENTICATION_ENABLED": "false"})
    assert wait_http(PORTS["t-rollback"], want=200) == 200
    instance = _upload(PORTS["t-rollback"], "ROLLBACK")
    engines = {"lab-engine": _engine_data(fleet, "rollback", {"orthancteam": refs["team-broken"]})}
    code, output, report = _remediate(fleet, engines)
    row = host_rows(report)["@dockerengine/lab-engine"]
    assert code == 2 and row["status"] == "failed", output[-2000:]
    assert "container t-rollback: health gate failed" in row["reason"]
    assert "old container t-rollback restored and started with its data" in row["reason"]
    attrs = client.api.inspect_container("t-rollback")
    assert attrs["Id"] == old_id and attrs["State"]["Running"]
    assert wait_http(PORTS["t-rollback"], want=200) == 200
    assert requests.get(f"http://127.0.0.1:{PORTS['t-rollback']}/instances", timeout=10).json() == [instance]
    assert not client.containers.list(all=True, filters={"label": f"{LABEL}-role=rollback", "status": "created"})


def test_bad_images_and_engines_fail_alone_and_change_nothing(fleet, tmp_path):
    client, refs = fleet["client"], fleet["refs"]
    ids = {name: _create(client, name, refs["jodogne-old"], name,
                         binds=[f"{config_dir(tmp_path, name, '/var/lib/orthanc/db')}:/etc/orthanc"])
           for name in ("t-unknown", "t-unreachable")}
    ids["t-denied"] = _create(client, "t-denied", refs["jodogne-old"], "t-denied",
                              binds=[f"{config_dir(tmp_path, 't-denied', '/var/lib/orthanc/db')}:/etc/orthanc"])
    locked = registry.start(fleet["work"] / "locked-registry", LOCKED_REGISTRY_PORT, lambda _m: None,
                            users={"pusher": "Pusher-pw-4d2"})
    denied_ref = f"{locked}/jodogne/orthanc:locked"  # exists there; only credentials are missing
    client.images.get(refs["jodogne-old"]).tag(denied_ref)
    pushed = client.images.push(denied_ref, auth_config={"username": "pusher", "password": "Pusher-pw-4d2"})
    assert "errorDetail" not in pushed, pushed[-500:]
    client.images.remove(denied_ref)
    stopped = _create(client, "t-stopped", refs["jodogne-old"], "stopped", start=False)
    for name in ids:
        assert wait_http(PORTS[name], want=200) == 200
    engines = {
        "unknown": _engine_data(fleet, "t-unknown", {"jodogne": f"{fleet['registry']}/jodogne/orthanc:no-such"}),
        "unreachable": _engine_data(fleet, "t-unreachable", {"jodogne": "127.0.0.1:31539/jodogne/orthanc:1.10.1"}),
        "denied": _engine_data(fleet, "t-denied", {"jodogne": denied_ref}),
        "stopped": _engine_data(fleet, "stopped", {"jodogne": refs["jodogne-fixed"]}),
        "down": _engine_data(fleet, "none", {}, url="unix:///run/orthanc-harden-test/no-docker.sock"),
    }
    code, output, report = _remediate(fleet, engines)
    rows = host_rows(report)
    assert code == 2, output[-2000:]
    assert rows["@dockerengine/unknown"]["status"] == "failed", rows["@dockerengine/unknown"]["reason"]
    assert "cannot pull 127.0.0.1:31530/jodogne/orthanc:no-such" in rows["@dockerengine/unknown"]["reason"]
    assert "cannot pull 127.0.0.1:31539/jodogne/orthanc:1.10.1" in rows["@dockerengine/unreachable"]["reason"]
    assert (f"cannot pull {denied_ref}: " in rows["@dockerengine/denied"]["reason"]
            and "no basic auth credentials" in rows["@dockerengine/denied"]["reason"]
            and "docker login 127.0.0.1:31531" in rows["@dockerengine/denied"]["reason"])
    assert "container t-stopped is created, not running" in rows["@dockerengine/stopped"]["reason"]
    assert rows["@dockerengine/down"]["reason"].startswith("unreachable: Docker engine unix:///run/")
    for name, container_id in ids.items():
        attrs = client.api.inspect_container(name)
        assert attrs["Id"] == container_id and attrs["State"]["Running"], f"{name} untouched and running"
        assert wait_http(PORTS[name], want=200) == 200
    assert client.api.inspect_container("t-stopped")["Id"] == stopped
    for line in output.splitlines():
        if "t-unknown" in line or "t-unreachable" in line or "t-denied" in line:
            assert "Traceback" not in line


SSH_PORT = 31549


def _ssh_answers(port: int, timeout: float = 60) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(16).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def test_ssh_engine_uses_the_inventory_ssh_settings(fleet, tmp_path):
    """ssh:// reaches the engine through `docker system dial-stdio` on an SSH host, with the inventory's key,
    port and known_hosts file; a host key that is not in that file is refused."""
    from orthanc_harden.lab import image, keys

    client, work = fleet["client"], fleet["work"]
    _create(client, "t-viassh", fleet["refs"]["jodogne-old"], "over-ssh",
            binds=[f"{config_dir(tmp_path, 'viassh', '/var/lib/orthanc/db')}:/etc/orthanc"])
    host_image = image.ensure_images(client, lambda _m: None)["host"]
    host_private, host_public = keys.new_ed25519()
    client_key, client_public = keys.ensure_client_key(work)
    sshd = client.containers.create(
        host_image, name="t-sshd", detach=True, labels=_labels("sshd"), cap_add=["SYS_ADMIN"],
        tmpfs={"/run": "", "/run/lock": ""}, ports={"22/tcp": ("127.0.0.1", SSH_PORT)},
        volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"},
                 "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}})
    with open("/usr/bin/docker", "rb") as cli:
        docker_cli = cli.read()
    sshd.put_archive("/", fleet_lab.tar_files({
        "etc/ssh/ssh_host_ed25519_key": (host_private, 0o600),
        "etc/ssh/ssh_host_ed25519_key.pub": ((host_public + "\n").encode(), 0o644),
        "root/.ssh/authorized_keys": ((client_public + "\n").encode(), 0o600),
        "usr/local/bin/docker": (docker_cli, 0o755),
    }))
    sshd.start()
    assert _ssh_answers(SSH_PORT), "the SSH host answers"
    known_hosts, wrong_hosts = work / "known_hosts", work / "wrong_known_hosts"
    keys.write_known_hosts(known_hosts, [("127.0.0.1", SSH_PORT, host_public)])
    keys.write_known_hosts(wrong_hosts, [("127.0.0.1", SSH_PORT, keys.new_ed25519()[1])])

    def engine_host(known: str) -> dict:
        return {**_engine_data(fleet, "over-ssh", {}, url=f"ssh://root@127.0.0.1:{SSH_PORT}"),
                "ssh_port": SSH_PORT, "ssh_user": "root", "ssh_key": str(client_key),
                "ssh_known_hosts_file": known, "ssh_allow_agent": False, "ssh_look_for_keys": False}

    report_path = work / "audit.json"
    proc = run_cli("audit", str(fleet["inventory"]), "--json", str(report_path), env={"OH_TEST_ENGINES": json.dumps({
        "over-ssh": engine_host(str(known_hosts)), "wrong-key": engine_host(str(wrong_hosts))})})
    assert report_path.exists(), (proc.stdout + proc.stderr)[-3000:]
    rows = json.loads(report_path.read_text())["instances"]
    over_ssh = {r["instance"]: r for r in rows if r["host"] == "@dockerengine/over-ssh"}
    assert set(over_ssh) == {"t-viassh"}, proc.stdout + proc.stderr
    assert over_ssh["t-viassh"]["version"] == "1.5.7" and not over_ssh["t-viassh"]["compliant"]
    assert over_ssh["t-viassh"]["probe"]["anonymous_status"] == 200, "probed through the published port"
    (wrong,) = [r for r in rows if r["host"] == "@dockerengine/wrong-key"]
    assert wrong["status"] == "failed" and "not reachable: Host key for server" in wrong["reason"]
