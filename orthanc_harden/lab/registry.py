"""A local Docker registry on 127.0.0.1 (Debian's docker-registry, distribution v2) for pull tests.

No outside registry is reachable where the lab runs; the engine treats 127.0.0.0/8 registries as insecure by
default, so plain HTTP push and pull work without touching the daemon's configuration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import requests

from . import engine
from .errors import LabError

BINARY = "/usr/bin/docker-registry"
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
"""


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _running(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"docker-registry" in cmdline else None


def start(directory: Path, port: int, say: Callable[[str], None]) -> str:
    """Serve a registry from `directory` on 127.0.0.1:`port` (reused when already up); returns its address."""
    if not os.path.exists(BINARY):
        engine.apt_install(["docker-registry"], say)
    directory.mkdir(parents=True, exist_ok=True)
    pid_file = directory / "registry.pid"
    if _running(pid_file) and _answers(port):
        return f"127.0.0.1:{port}"
    config = directory / "config.yml"
    config.write_text(CONFIG.format(root=directory / "data", port=port))
    log = directory / "registry.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([BINARY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _answers(port):
            return f"127.0.0.1:{port}"
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    stop(directory)
    raise LabError(f"the local registry did not answer on 127.0.0.1:{port}: {engine.log_tail(log)}")


def stop(directory: Path) -> None:
    pid_file = directory / "registry.pid"
    pid = _running(pid_file)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _running(pid_file) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _running(pid_file):
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
