"""`lab up | status | down`: a small fleet of vulnerable Orthanc hosts on the local Docker engine.

Package hosts are systemd containers (sshd + Debian's Orthanc), reached over SSH like real servers. Container
hosts run Orthanc as the container's own process, configured from a mounted directory with DICOM storage on a
named volume, and are reached through the Docker Engine API. Everything published binds to 127.0.0.1 only.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import docker
import requests
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from . import DEFAULT_MIRROR, engine, image, keys, old_members, seed, state
from .errors import LabError

READY_TIMEOUT = 180.0
OLD_LABEL = "orthanc-harden.lab-old"
CONTAINER_CONFIG = """\
{{
  // orthanc-harden lab: an Orthanc container left in the CVE-2025-0896 state on purpose
  "Name" : "{name}",
  "StorageDirectory" : "/var/lib/orthanc/db",
  "IndexDirectory" : "/var/lib/orthanc/db",
  "RemoteAccessAllowed" : true,
  "AuthenticationEnabled" : false,  /* explicit: the vulnerable state */
  "HttpPort" : 8042,
  "DicomPort" : 4242
}}
"""


@dataclass
class LabSpec:
    lab: str = state.DEFAULT_LAB
    hosts: int = 3
    containers: int = 1
    port_base: int = 24200
    mirror: str = DEFAULT_MIRROR
    # Members below 1.5.8 (the last ones of each kind); None: one of each in the `default` lab, which the demo
    # uses, and none in other labs, whose tests start from Debian's 1.10.1.
    old_hosts: int | None = None
    old_containers: int | None = None

    def __post_init__(self):
        demo = 1 if self.lab == state.DEFAULT_LAB else 0
        self.old_hosts = min(demo, self.hosts) if self.old_hosts is None else self.old_hosts
        self.old_containers = min(demo, self.containers) if self.old_containers is None else self.old_containers

    def validate(self) -> None:
        if not (1 <= self.hosts <= 40 and 0 <= self.containers <= 9):
            raise LabError("--hosts must be 1..40 and --containers 0..9")
        if not (0 <= self.old_hosts <= self.hosts and 0 <= self.old_containers <= self.containers):
            raise LabError("--old-hosts and --old-containers cannot exceed --hosts and --containers")
        # Below Linux's ephemeral range (32768+): outgoing connections there could hold a lab port at random.
        # The bound is this lab's own highest port, so a small lab may start close below the range.
        highest = max((port for m in members(self) for port in m.ports.values()), default=self.port_base)
        if not 1024 <= self.port_base or highest >= 32768:
            raise LabError(f"--port-base {self.port_base} must be 1024 or more, and this lab's highest port "
                           f"({highest}) below 32768")
        if not self.lab.replace("-", "").isalnum():
            raise LabError(f"lab name {self.lab!r} may hold only letters, digits and '-'")


@dataclass
class Member:
    name: str          # inventory name
    kind: str          # "package" | "container"
    slot: int
    port_base: int
    lab: str
    old: bool = False  # below 1.5.8: the stand-in package, or the 1.5.7 image

    @property
    def container(self) -> str:
        return f"ohlab-{self.lab}-{self.name.removeprefix('lab-')}"

    @property
    def ports(self) -> dict[str, int]:
        base = self.port_base + 10 * self.slot
        wanted = {"http": base + 1, "dicom": base + 2}
        if self.kind == "package":
            wanted["ssh"] = base
        return wanted


def members(spec: LabSpec) -> list[Member]:
    out = [Member(f"lab-pkg-{i}", "package", i, spec.port_base, spec.lab, i > spec.hosts - spec.old_hosts)
           for i in range(1, spec.hosts + 1)]
    out += [Member(f"lab-docker-{i}", "container", 50 + i, spec.port_base, spec.lab,
                   i > spec.containers - spec.old_containers)
            for i in range(1, spec.containers + 1)]
    return out


def mirror_port(spec: LabSpec) -> int:
    """A lab port nothing listens on (hosts start at base+10): the old and fixed images' mirror name."""
    return spec.port_base + 9


def _labels(spec: LabSpec, member: Member | None = None) -> dict[str, str]:
    labels = {state.LABEL: spec.lab}
    if member:
        labels["orthanc-harden.lab-host"] = member.name
        if member.old:
            labels[OLD_LABEL] = "1"
    return labels


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As a server binds: lingering TIME_WAIT connections do not make a port taken, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def tar_files(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A tar archive for put_archive: {path: (contents, mode)}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _existing(client: docker.DockerClient, spec: LabSpec, member: Member):
    try:
        found = client.containers.get(member.container)
    except NotFound:
        return None
    if found.labels.get(state.LABEL) != spec.lab:
        raise LabError(f"a container named {member.container} exists that this lab did not create; remove or rename it")
    return found


def _ensure_network(client: docker.DockerClient, spec: LabSpec, created: list) -> str:
    name = f"ohlab-{spec.lab}"
    matches = client.networks.list(names=[name])
    for net in matches:
        if net.name == name:
            if net.attrs.get("Labels", {}).get(state.LABEL) != spec.lab:
                raise LabError(f"a Docker network named {name} exists that this lab did not create")
            return name
    net = client.networks.create(name, driver="bridge", labels=_labels(spec))
    created.append(net)
    return name


def _create_package_host(client, spec: LabSpec, member: Member, img: str, network: str, client_pub: str):
    host_private, host_public = keys.new_ed25519()
    ports = member.ports
    container = client.containers.create(
        img, name=member.container, hostname=member.name, detach=True, network=network,
        cap_add=["SYS_ADMIN", "NET_ADMIN"], tmpfs={"/run": "", "/run/lock": ""},
        volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}},
        ports={"22/tcp": ("127.0.0.1", ports["ssh"]), "8042/tcp": ("127.0.0.1", ports["http"]),
               "4242/tcp": ("127.0.0.1", ports["dicom"])},
        labels={**_labels(spec, member), "orthanc-harden.lab-host-key": host_public},
    )
    container.put_archive("/", tar_files({
        "etc/ssh/ssh_host_ed25519_key": (host_private, 0o600),
        "etc/ssh/ssh_host_ed25519_key.pub": ((host_public + "\n").encode(), 0o644),
        "root/.ssh/authorized_keys": ((client_pub + " orthanc-harden-lab\n").encode(), 0o600),
    }))
    return container


def _create_container_host(client, spec: LabSpec, member: Member, img: str, network: str, directory: Path,
                           created: list):
    config_dir = directory / "containers" / member.name / "etc-orthanc"
    config_dir.mkdir(parents=True, exist_ok=True)
    config_file = config_dir / "orthanc.json"
    if not config_file.exists():
        config_file.write_text(CONTAINER_CONFIG.format(name=member.name))
        os.chmod(config_file, 0o640)
    volume_name = f"{member.container}-db"
    try:
        client.volumes.get(volume_name)
    except NotFound:
        created.append(client.volumes.create(volume_name, labels=_labels(spec, member)))
    ports = member.ports
    return client.containers.create(
        img, name=member.container, hostname=member.name, detach=True, network=network,
        volumes={str(config_dir): {"bind": "/etc/orthanc", "mode": "rw"},
                 volume_name: {"bind": "/var/lib/orthanc/db", "mode": "rw"}},
        ports={"8042/tcp": ("127.0.0.1", ports["http"]), "4242/tcp": ("127.0.0.1", ports["dicom"])},
        restart_policy={"Name": "unless-stopped"}, labels=_labels(spec, member),
    )


def ssh_ready(port: int) -> bool:
    """An SSH server answers its banner on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(16).startswith(b"SSH-")
    except OSError:
        return False


def _http_status(port: int, auth=None) -> int | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/system", auth=auth, timeout=3).status_code
    except requests.RequestException:
        return None


def _wait_ready(client, pending: list[Member]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = list(pending)
    while waiting and time.monotonic() < deadline:
        for member in list(waiting):
            ports = member.ports
            ssh_ok = member.kind != "package" or ssh_ready(ports["ssh"])
            if ssh_ok and _http_status(ports["http"]) is not None:
                waiting.remove(member)
        if waiting:
            time.sleep(1)
    if waiting:
        names = ", ".join(m.name for m in waiting)
        raise LabError(f"lab host(s) not ready within {READY_TIMEOUT:.0f}s (sshd/Orthanc not answering): {names}")


def _cleanup(created: list) -> None:
    """Undo what this run created, newest first, so a failed `lab up` leaves nothing half-made."""
    for resource in reversed(created):
        try:
            if isinstance(resource, Container):
                resource.remove(force=True, v=True)
            else:
                resource.remove()
        except APIError:
            pass


def up(spec: LabSpec, say: Callable[[str], None]) -> dict:
    """Bring the lab up (idempotent); return the saved state."""
    spec.validate()
    directory = state.lab_dir(spec.lab)
    with state.locked(directory):
        client = engine.ensure_engine(say)
        images = image.ensure_images(client, say, spec.mirror)
        if spec.old_containers:
            mirrored = old_members.mirror_images(client, mirror_port(spec), say)
            images.update({"container-old": mirrored["old"], "container-fixed": mirrored["fixed"]})
        key_path, client_pub = keys.ensure_client_key(directory)
        previous = state.load(directory) or {}
        seeded = {entry["container_id"]: entry.get("seeded_instances", [])
                  for entry in previous.get("hosts", []) + previous.get("containers", [])}
        # A member orthanc-harden recreated (an upgraded container) has a new id and the same data.
        seeded_by_name = {entry["name"]: entry.get("seeded_instances", [])
                          for entry in previous.get("hosts", []) + previous.get("containers", [])}
        created: list = []
        try:
            network = _ensure_network(client, spec, created)
            wanted = members(spec)
            found = {m.name: _existing(client, spec, m) for m in wanted}
            for member in wanted:
                if found[member.name] is None:
                    for purpose, port in member.ports.items():
                        if not port_free(port):
                            raise LabError(f"port 127.0.0.1:{port} is already in use (needed for {member.name} "
                                           f"{purpose}); free it or choose another --port-base")
            fresh = []
            for member in wanted:
                container = found[member.name]
                if container is None:
                    say(f"creating {member.name} ({member.kind})")
                    if member.kind == "package":
                        container = _create_package_host(client, spec, member, images["host"], network, client_pub)
                    else:
                        container = _create_container_host(
                            client, spec, member, images["container-old" if member.old else "app"], network,
                            directory, created)
                    created.append(container)
                    fresh.append(member)
                if container.status != "running":
                    try:
                        container.start()
                    except APIError as err:
                        raise LabError(f"starting {member.name} failed: {err.explanation or err}") from None
                found[member.name] = container
            _wait_ready(client, wanted)
            for member in fresh:
                if member.old and member.kind == "package":  # before seeding: the DICOM data is the new one's too
                    old_members.plant_package(found[member.name], say)
        except BaseException:
            _cleanup(created)
            raise

        hosts, containers, known = [], [], []
        for member in wanted:
            container = found[member.name]
            container.reload()
            net = container.attrs["NetworkSettings"]["Networks"].get(network, {})
            ids = (seeded.get(container.id) or (seeded_by_name.get(member.name) if member not in fresh else None)
                   or seed.seed(f"http://127.0.0.1:{member.ports['http']}", member.name))
            entry = {"name": member.name, "kind": member.kind, "container": member.container,
                     "container_id": container.id, "ip": net.get("IPAddress"),
                     "http_port": member.ports["http"], "dicom_port": member.ports["dicom"],
                     "seeded_instances": ids, "old": container.labels.get(OLD_LABEL) == "1"}
            if member.kind == "package":
                entry["ssh_port"] = member.ports["ssh"]
                known.append(("127.0.0.1", member.ports["ssh"], container.labels["orthanc-harden.lab-host-key"]))
                hosts.append(entry)
            else:
                entry["config_dir"] = str(directory / "containers" / member.name / "etc-orthanc")
                entry["volume"] = f"{member.container}-db"
                containers.append(entry)
        keys.write_known_hosts(directory / "known_hosts", known)
        ipam = client.networks.get(network).attrs["IPAM"]["Config"]
        data = {"lab": spec.lab, "network": network, "subnet": ipam[0]["Subnet"] if ipam else None, "images": images,
                "docker_host": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
                "ssh_key": str(key_path), "known_hosts": str(directory / "known_hosts"),
                "hosts": hosts, "containers": containers}
        state.save(directory, data)
        return data


def status(lab: str = state.DEFAULT_LAB) -> list[dict]:
    """One row per lab member: container state, anonymous GET /system status, stored instances."""
    directory = state.lab_dir(lab)
    data = state.load(directory)
    if data is None:
        raise LabError(f"no lab named {lab!r} is up (no {state.state_file(directory)}); run `orthanc-harden lab up`")
    client = engine.ensure_engine(lambda _msg: None, allow_install=False)
    rows = []
    for entry in data["hosts"] + data["containers"]:
        try:
            running = client.containers.get(entry["container"]).status
        except NotFound:
            running = "missing"
        rows.append({**entry, "state": running, "anonymous_system": _http_status(entry["http_port"])})
    return rows


def down(lab: str = state.DEFAULT_LAB, say: Callable[[str], None] = print) -> dict[str, int]:
    """Remove exactly what carries this lab's label (containers, volumes, network) and the lab's state."""
    directory = state.lab_dir(lab)
    client = engine.ensure_engine(say, allow_install=False)
    selector = {"label": f"{state.LABEL}={lab}"}
    removed = {"containers": 0, "volumes": 0, "networks": 0}
    with state.locked(directory):
        for container in client.containers.list(all=True, filters=selector):
            container.remove(force=True, v=True)
            removed["containers"] += 1
        for volume in client.volumes.list(filters=selector):
            volume.remove(force=True)
            removed["volumes"] += 1
        for network in client.networks.list(filters=selector):
            network.remove()
            removed["networks"] += 1
        had_state = state.state_file(directory).exists()
        for key in ("container-old", "container-fixed"):  # the mirror names this lab gave the cached images
            reference = ((state.load(directory) or {}).get("images") or {}).get(key)
            if reference:
                try:
                    client.images.remove(reference, noprune=True)  # an untag: the cached image stays
                except APIError:
                    pass
        for path in sorted(directory.rglob("*"), reverse=True):
            if path.name == ".lock":
                continue
            path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    if not had_state and not any(removed.values()):
        raise LabError(f"no lab named {lab!r} exists: nothing to remove")
    return removed
