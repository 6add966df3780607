"""Reach the Docker engine, installing and starting Debian's docker.io where that is possible and allowed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import docker
from docker.errors import DockerException

from .errors import LabError

DOCKERD_LOG = Path("/var/log/orthanc-harden-dockerd.log")
START_TIMEOUT = 90.0
PID_FILES = (Path("/var/run/docker.pid"), Path("/var/run/docker/containerd/containerd.pid"))


def _ping() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except DockerException:
        return None


def _is_debian_root() -> bool:
    return os.geteuid() == 0 and Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def apt_install(packages: list[str], say: Callable[[str], None]) -> None:
    """Install Debian packages non-interactively; one LabError line on failure."""
    say(f"installing Debian package(s): {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise LabError(f"'{' '.join(argv[:2])}' failed installing {' '.join(packages)}: {last}")


def ensure_engine(say: Callable[[str], None], allow_install: bool = True) -> docker.DockerClient:
    """Return a client for a running engine, starting one on Debian/Ubuntu as root when none answers."""
    client = _ping()
    if client:
        return client
    endpoint = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    # ORTHANC_HARDEN_LAB_ENGINE_AUTOSTART=0 forbids installing/starting an engine (useful on shared machines).
    allow_install = allow_install and os.environ.get("ORTHANC_HARDEN_LAB_ENGINE_AUTOSTART", "1") != "0"
    if not (allow_install and _is_debian_root()):
        raise LabError(
            f"no Docker engine answers at {endpoint}; start one (this machine is not Debian/Ubuntu as root, "
            "so the lab will not install it)"
        )
    if shutil.which("dockerd") is None:
        apt_install(["docker.io"], say)
    if Path("/run/systemd/system").exists():
        say("starting the Docker engine: systemctl start docker")
        subprocess.run(["systemctl", "start", "docker"], capture_output=True, timeout=120)
        daemon = None
    else:
        for stale in clear_stale_pid_files(PID_FILES):
            say(f"removed {stale}: the process it names is not running (left over from an earlier boot)")
        say(f"starting the Docker engine: dockerd (log: {DOCKERD_LOG})")
        with open(DOCKERD_LOG, "ab") as log:
            daemon = subprocess.Popen(
                ["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        client = _ping()
        if client:
            return client
        if daemon is not None and daemon.poll() is not None:
            raise LabError(f"dockerd exited with status {daemon.returncode}: {log_tail(DOCKERD_LOG)}")
        time.sleep(1)
    raise LabError(f"the Docker engine did not answer within {START_TIMEOUT:.0f}s: {log_tail(DOCKERD_LOG)}")


def clear_stale_pid_files(paths: tuple[Path, ...]) -> list[Path]:
    """Remove pid files naming no live process; dockerd refuses to start while one exists.

    A machine image taken while dockerd ran keeps /var/run/docker.pid (here /run is not a tmpfs), and the
    next dockerd stops at "pid file found, ensure docker is not running".
    """
    removed = []
    for path in paths:
        try:
            pid = int(path.read_text().strip() or "0")
        except (OSError, ValueError):
            pid = 0
        if not path.exists() or (pid > 0 and _alive(pid)):
            continue
        path.unlink()
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    # A recycled pid may now belong to anything: only a live dockerd or containerd counts.
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return name in ("dockerd", "containerd")


def terminate(pid: int, alive: Callable[[], bool], child: subprocess.Popen | None, timeout: float) -> bool:
    """TERM, then KILL, each wait bounded by `timeout`; `child` (our own Popen of it) is reaped so its /proc entry
    goes away. True when the process is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            if child is not None:
                child.poll()
            time.sleep(0.2)
        if not alive():
            break
    if child is not None:
        child.poll()
    return not alive()


def log_tail(path: Path, lines: int = 3) -> str:
    """The last lines of a log, joined on one line, for an error message."""
    try:
        tail = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return f"no log at {path}"
    return " | ".join(tail) or f"{path} is empty"
