"""N bench hosts on the local Docker engine: bring up, reset to vulnerable, count, tear down.

Only names starting with ``bench-``, the bench labels, and 127.0.0.1 ports 5000-15999 are used, because other
people run tests and Molecule on the same engine. Every wait is bounded in time; teardown removes only what
carries this run's label.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import docker
import requests
from docker.errors import APIError, NotFound

from orthanc_harden.lab import keys
from orthanc_harden.lab.fleet import port_free, ssh_ready, tar_files
from orthanc_harden.remote import load

from . import LABEL, RUN_LABEL
from .image import SUDO_USER

PORT_MIN, PORT_MAX = 5000, 15999
PROBE_CACHE = load("probe")["PROBE_CACHE"]
# Host kinds of a real fleet (issue #24), in every size from N=2: reached as a sudo user, sshd on another port.
OTHER_SSHD_PORT = 2222
SSHD_PORT_CONF = "/etc/ssh/sshd_config.d/orthanc-harden-bench-port.conf"


def kind_of(index: int) -> str:
    """root (plain), sudo (login as deploy, password-less sudo) or port (sshd on 2222), in turn; host 1 is plain,
    so N=1 is one host alone as the floor reaches it."""
    return ("root", "root", "sudo", "port")[index % 4]
# Creating and starting containers hits dockerd; a few at once is faster than one, more only queues on 2 cores.
ENGINE_WORKERS = 4

# One docker exec per host reads all counters from the host's journal (not over SSH, so counting adds no
# SSH command): sshd's "Starting session:" (one per command: exec, subsystem, shell), its accepted logins, and
# systemd's "Started orthanc.service" (one per start, so a restart counts once).
_COUNT = ("j() { journalctl -q --no-pager -o cat -u \"$1\"; }; "
          "echo $(j ssh.service | grep -c '^Starting session:') "
          "$(j ssh.service | grep -c '^Accepted publickey') "
          "$(j orthanc.service | grep -c '^Started orthanc') "
          "$(c=$(journalctl -q -n 0 --show-cursor | sed -n 's/^-- cursor: //p'); echo ${c:--})")
# sshd's own timestamps of the run on one host: from its first login (or session) to its last closed session,
# a span that leaves out the control node's start and, for Ansible, its ControlPersist master idling afterwards.
# A host whose journal was still empty ("-": no cursor yet) is read from its start.
_SPAN = ("if [ \"$1\" = - ]; then journalctl -q --no-pager -o short-unix -u ssh.service; "
         "else journalctl -q --no-pager -o short-unix -u ssh.service --after-cursor=\"$1\"; fi")


@dataclass
class Host:
    index: int
    name: str        # inventory name, the same for both tools
    container: str   # Docker name: bench-<run>-hNN
    ssh_port: int
    http_port: int
    key_private: bytes
    key_public: str
    kind: str = "root"

    @property
    def login(self) -> str:
        return SUDO_USER if self.kind == "sudo" else "root"

    @property
    def sshd_port(self) -> int:
        """The port sshd listens on inside the host (the published 127.0.0.1 port maps to it)."""
        return OTHER_SSHD_PORT if self.kind == "port" else 22


def http_status(port: int, auth: tuple[str, str] | None = None) -> int | None:
    """GET /system from the control node; None when Orthanc does not answer."""
    try:
        return requests.get(f"http://127.0.0.1:{port}/system", auth=auth, timeout=5).status_code
    except requests.RequestException:
        return None


class Fleet:
    """The hosts of one bench size. Host keys stay per slot, so a reset host is the same host to both tools."""

    def __init__(self, client: docker.DockerClient, run_id: str, size: int, port_base: int, image: str,
                 workdir: Path, say: Callable[[str], None]):
        last = port_base + 10 * size + 1
        if port_base + 10 < PORT_MIN or last > PORT_MAX:
            raise ValueError(f"ports {port_base + 10}..{last} leave the bench range {PORT_MIN}..{PORT_MAX}")
        self.client, self.run_id, self.image, self.workdir, self.say = client, run_id, image, workdir, say
        self.network = f"bench-{run_id}"
        self.subnet: str | None = None
        self.hosts = []
        for i in range(1, size + 1):
            private, public = keys.new_ed25519()
            self.hosts.append(Host(i, f"bench-h{i:02d}", f"bench-{run_id}-h{i:02d}", port_base + 10 * i,
                                   port_base + 10 * i + 1, private, public, kind_of(i)))
        self.key_path, self.client_pub = keys.ensure_client_key(workdir)
        self.known_hosts = workdir / "known_hosts"
        keys.write_known_hosts(self.known_hosts, [("127.0.0.1", h.ssh_port, h.key_public) for h in self.hosts])

    def _labels(self, host: Host | None = None) -> dict[str, str]:
        labels = {LABEL: "1", RUN_LABEL: self.run_id}
        if host:
            labels["orthanc-harden.bench-host"] = host.name
        return labels

    def _ensure_network(self) -> None:
        for net in self.client.networks.list(names=[self.network]):
            if net.name == self.network and net.attrs.get("Labels", {}).get(RUN_LABEL) != self.run_id:
                raise RuntimeError(f"a Docker network {self.network} exists that this bench run did not create")
        if not self.client.networks.list(names=[self.network]):
            self.client.networks.create(self.network, driver="bridge", labels=self._labels())
        ipam = self.client.networks.get(self.network).attrs["IPAM"]["Config"]
        self.subnet = ipam[0]["Subnet"]

    def _create(self, host: Host) -> None:
        try:
            self.client.containers.get(host.container)
            raise RuntimeError(f"container {host.container} already exists")
        except NotFound:
            pass
        container = self.client.containers.create(
            self.image, name=host.container, hostname=host.name, detach=True, network=self.network,
            cap_add=["SYS_ADMIN", "NET_ADMIN"], tmpfs={"/run": "", "/run/lock": ""},
            volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}},
            ports={f"{host.sshd_port}/tcp": ("127.0.0.1", host.ssh_port), "8042/tcp": ("127.0.0.1", host.http_port)},
            labels=self._labels(host),
        )
        authorized = (self.client_pub + " orthanc-harden-bench\n").encode()
        files = {"etc/ssh/ssh_host_ed25519_key": (host.key_private, 0o600),
                 "etc/ssh/ssh_host_ed25519_key.pub": ((host.key_public + "\n").encode(), 0o644)}
        if host.kind == "sudo":
            # root's and readable by all (sshd reads it as the user; StrictModes accepts root as the owner);
            # root keeps no key, so the only way in is the sudo login.
            files[f"home/{SUDO_USER}/.ssh/authorized_keys"] = (authorized, 0o644)
        else:
            files["root/.ssh/authorized_keys"] = (authorized, 0o600)
        if host.kind == "port":
            files[SSHD_PORT_CONF.lstrip("/")] = (f"Port {OTHER_SSHD_PORT}\n".encode(), 0o644)
        container.put_archive("/", tar_files(files))
        container.start()

    def _wait_ready(self) -> None:
        """sshd answers and Orthanc answers anonymously (200: the planted vulnerable state), bounded in time."""
        deadline = time.monotonic() + 180 + 4 * len(self.hosts)
        waiting = list(self.hosts)
        while waiting and time.monotonic() < deadline:
            waiting = [h for h in waiting if not (ssh_ready(h.ssh_port) and http_status(h.http_port) == 200)]
            if waiting:
                time.sleep(1)
        if waiting:
            raise RuntimeError(f"not ready (sshd, or Orthanc answering 200 anonymously) within the time limit: "
                               f"{', '.join(h.name for h in waiting[:5])}")

    def up(self) -> None:
        busy = [p for h in self.hosts for p in (h.ssh_port, h.http_port) if not port_free(p)]
        if busy:
            raise RuntimeError(f"127.0.0.1 port(s) in use: {busy[:5]}; choose another --port-base")
        inotify_room(self.client, len(self.hosts), self.say)
        self._ensure_network()
        started = time.monotonic()
        with ThreadPoolExecutor(ENGINE_WORKERS) as pool:
            list(pool.map(self._create, self.hosts))
        self._wait_ready()
        self.say(f"bench: {len(self.hosts)} host(s) up and vulnerable in {time.monotonic() - started:.0f}s")

    def _remove_containers(self) -> int:
        found = self.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={self.run_id}"})

        def remove(container) -> None:
            try:
                container.remove(force=True, v=True)
            except NotFound:
                pass

        with ThreadPoolExecutor(ENGINE_WORKERS) as pool:
            list(pool.map(remove, found))
        return len(found)

    def reset(self) -> None:
        """Back to the planted vulnerable state: the same hosts (names, ports, keys) from a fresh container."""
        self._remove_containers()
        self.up()

    def down(self) -> None:
        removed = self._remove_containers()
        for net in self.client.networks.list(filters={"label": f"{RUN_LABEL}={self.run_id}"}):
            try:
                net.remove()
            except (NotFound, APIError):
                pass
        self.say(f"bench: removed {removed} host(s) and network {self.network}")

    def counters(self) -> dict[str, dict[str, int]]:
        """{host: {"sessions", "logins", "orthanc_starts", "cpu_ms"}}: the first three from each host's journal,
        the CPU time of everything in the host (its cgroup; None where it cannot be read) from the engine's
        side, read after the journal so the reading's own exec is not in the next run's share."""
        def one(host: Host) -> tuple[str, dict[str, int]]:
            container = self.client.containers.get(host.container)
            # Right after a reset, under load, an exec has come back empty once: a few tries, 1 s apart.
            for _attempt in range(5):
                code, output = container.exec_run(["sh", "-c", _COUNT])
                values = output.decode().split()
                if code == 0 and len(values) == 4:
                    break
                time.sleep(1)
            else:
                raise RuntimeError(f"{host.name}: reading the journal failed ({code}): {output.decode()[-200:]}")
            counts = dict(zip(("sessions", "logins", "orthanc_starts"), map(int, values[:3]), strict=True))
            return host.name, {**counts, "cursor": values[3], "cpu_ms": cgroup_cpu_ms(container.id)}

        with ThreadPoolExecutor(ENGINE_WORKERS) as pool:
            return dict(pool.map(one, self.hosts))


    def kind(self, name: str) -> str:
        return next(h.kind for h in self.hosts if h.name == name)

    def remove_probe_cache(self) -> None:
        """Takes away orthanc-harden's probe cache on every host (through the engine, not SSH)."""
        def one(host: Host) -> None:
            code, output = self.client.containers.get(host.container).exec_run(["rm", "-f", PROBE_CACHE])
            if code != 0:
                raise RuntimeError(f"{host.name}: removing the probe cache failed: {output.decode()[-200:]}")

        with ThreadPoolExecutor(ENGINE_WORKERS) as pool:
            list(pool.map(one, self.hosts))

    def spans(self, before: dict[str, dict]) -> dict[str, float | None]:
        """{host: seconds from its first SSH login or session to its last closed session since ``before``}."""
        def one(host: Host) -> tuple[str, float | None]:
            container = self.client.containers.get(host.container)
            code, output = container.exec_run(["sh", "-c", _SPAN, "span", before[host.name]["cursor"]])
            return host.name, session_span(output.decode(errors="replace")) if code == 0 else None

        with ThreadPoolExecutor(ENGINE_WORKERS) as pool:
            return dict(pool.map(one, self.hosts))


def session_span(journal: str) -> float | None:
    """From sshd's journal lines (``-o short-unix``): last ``Close session`` minus first ``Accepted`` or
    ``Starting session``; None without both."""
    start = end = None
    for line in journal.splitlines():
        stamp, _, rest = line.partition(" ")
        message = rest.split(": ", 1)[-1]
        try:
            when = float(stamp)
        except ValueError:
            continue
        if start is None and message.startswith(("Accepted publickey", "Starting session:")):
            start = when
        if message.startswith("Close session:"):
            end = when
    return round(end - start, 3) if start is not None and end is not None and end >= start else None


# Where the engine keeps a container's CPU time: cgroup v1 (nanoseconds), v2 with the systemd or the cgroupfs driver.
_CPU_V1 = "/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage"
_CPU_V2 = ("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat", "/sys/fs/cgroup/docker/{id}/cpu.stat")


def cgroup_cpu_ms(container_id: str) -> int | None:
    """User+system CPU time of every process in the container so far, in milliseconds."""
    try:
        return int(Path(_CPU_V1.format(id=container_id)).read_text()) // 1_000_000
    except (OSError, ValueError):
        pass
    for pattern in _CPU_V2:
        try:
            stat = dict(line.split() for line in Path(pattern.format(id=container_id)).read_text().splitlines())
            return int(stat["usage_usec"]) // 1000
        except (OSError, ValueError, KeyError):
            continue
    return None


INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_PER_SYSTEMD = 8  # systemd and its services take about five inotify instances per container


def inotify_room(client: docker.DockerClient, adding: int, say: Callable[[str], None]) -> None:
    """Every container's systemd shares root's inotify instances (128 by default): past about 20 systemd
    containers the next ones hang at boot ("Failed to create inotify object: Too many open files"). Raise the
    limit when root, or say what to raise."""
    need = INOTIFY_PER_SYSTEMD * (adding + len(client.containers.list())) + 128
    have = int(INOTIFY.read_text())
    if have >= need:
        return
    try:
        INOTIFY.write_text(str(need))
    except OSError as err:
        raise RuntimeError(f"fs.inotify.max_user_instances is {have}; {adding} more systemd containers need about "
                           f"{need}: sysctl -w fs.inotify.max_user_instances={need} ({err.strerror})") from None
    say(f"bench: fs.inotify.max_user_instances raised from {have} to {need} for {adding} systemd containers")


def remove_all_bench(client: docker.DockerClient) -> int:
    """Leftovers of interrupted bench runs (kill -9): everything carrying the bench label, nothing else."""
    count = 0
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
        container.remove(force=True, v=True)
        count += 1
    for net in client.networks.list(filters={"label": f"{LABEL}=1"}):
        net.remove()
        count += 1
    return count
