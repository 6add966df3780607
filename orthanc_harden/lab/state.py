"""Where the lab keeps its key pair, known_hosts, mounted configs and the JSON that inventories/lab.py reads."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from ..private_files import write_private

LABEL = "orthanc-harden.lab"
DEFAULT_LAB = "default"


def lab_dir(lab: str = DEFAULT_LAB) -> Path:
    """The state directory: $ORTHANC_HARDEN_LAB_DIR, else $XDG_STATE_HOME/orthanc-harden/lab-<name>."""
    override = os.environ.get("ORTHANC_HARDEN_LAB_DIR")
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "orthanc-harden" / f"lab-{lab}"


def state_file(directory: Path) -> Path:
    return directory / "lab.json"


def load(directory: Path) -> dict | None:
    path = state_file(directory)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def save(directory: Path, data: dict) -> None:
    # Atomic replace: inventories/lab.py may read this file while `lab up` is still writing it.
    write_private(state_file(directory), json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def locked(directory: Path):
    """Serialise `lab up` / `lab down` runs on the same lab."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
