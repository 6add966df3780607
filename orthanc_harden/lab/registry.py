"""A local Docker registry on 127.0.0.1 (Debian's docker-registry, distribution v2) for pull tests.

No outside registry is reachable where the lab runs; the engine treats 127.0.0.0/8 registries as insecure by
default (``docker info`` lists it under "Insecure Registries" with no daemon.json), so plain HTTP push and pull
work without touching the daemon's configuration.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Callable

import bcrypt
import requests

from . import engine
from .errors import LabError

BINARY = "/usr/bin/docker-registry"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: {secret}
"""
# Pulls without credentials are then refused ("pull denied"); the engine still allows plain HTTP to 127.0.0.0/8.
AUTH = """auth:
  htpasswd:
    realm: orthanc-harden-lab
    path: {path}
"""
# Registries this process started, so stop() can reap them (no zombie, no "still running" ResourceWarning).
_CHILDREN: dict[int, subprocess.Popen] = {}


def ensure_installed(say: Callable[[str], None]) -> None:
    """Install Debian's docker-registry when missing; its systemd unit is left alone (no systemd here anyway)."""
    if not os.path.exists(BINARY):
        engine.apt_install(["docker-registry"], say)
    if not os.path.exists(BINARY):
        raise LabError(f"installing docker-registry did not provide {BINARY}")


def _answers(port: int) -> bool:
    try:
        # 401: a registry that wants credentials answers too.
        return requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code in (200, 401)
    except requests.RequestException:
        return False


def _running(pid_file: Path) -> int | None:
    # A recycled pid may belong to anything now: only a live docker-registry counts (a zombie's cmdline is empty).
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"docker-registry" in cmdline else None


def start(directory: Path, port: int, say: Callable[[str], None], users: dict[str, str] | None = None) -> str:
    """Serve a registry from `directory` on 127.0.0.1:`port` (reused when already up); returns "127.0.0.1:PORT".

    With `users` ({name: password}) it refuses every request without one of them (htpasswd, bcrypt).
    """
    ensure_installed(say)
    directory.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{port}"
    pid_file = directory / "registry.pid"
    if _running(pid_file):
        if _answers(port):
            return address
        stop(directory)  # alive but deaf: not worth keeping
    if _answers(port):
        # Otherwise the wait below would mistake someone else's registry for ours.
        raise LabError(f"{address} already answers as a registry that {directory} did not start; pick another port")
    config = directory / "config.yml"
    # An explicit upload secret keeps the "no HTTP secret" warning out of the log tail an error quotes.
    text = CONFIG.format(root=directory / "data", port=port, secret=secrets.token_hex(16))
    if users:
        htpasswd = directory / "htpasswd"
        htpasswd.write_text("".join(f"{name}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n"
                                    for name, password in users.items()))
        htpasswd.chmod(0o600)
        text += AUTH.format(path=htpasswd)
    config.write_text(text)
    log = directory / "registry.log"
    say(f"starting a local registry on {address} (log: {log})")
    with open(log, "ab") as out:
        proc = subprocess.Popen([BINARY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    _CHILDREN[proc.pid] = proc
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if _answers(port):
            return address
        time.sleep(0.3)
    status = proc.poll()
    stop(directory)
    _CHILDREN.pop(proc.pid, None)
    why = f"exited with status {status}" if status is not None else f"did not answer within {START_TIMEOUT:.0f}s"
    raise LabError(f"the local registry on {address} {why}: {engine.log_tail(log)}")


def stop(directory: Path) -> None:
    """Stop the registry `directory`'s pid file names (TERM, then KILL, each wait bounded); keep its data."""
    pid_file = directory / "registry.pid"
    pid = _running(pid_file)
    if pid and not engine.terminate(pid, lambda: _running(pid_file) is not None, _CHILDREN.get(pid), STOP_TIMEOUT):
        raise LabError(f"the local registry (pid {pid}) did not stop")
    _CHILDREN.pop(pid, None)
    pid_file.unlink(missing_ok=True)
