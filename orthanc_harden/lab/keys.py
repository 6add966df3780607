"""SSH keys for the lab: one client key pair per lab, one host key per lab host, and the known_hosts file."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..private_files import write_private


def new_ed25519() -> tuple[bytes, str]:
    """Return (OpenSSH private key bytes, 'ssh-ed25519 AAAA...' public key line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def ensure_client_key(directory: Path) -> tuple[Path, str]:
    """The lab's client key (0600) and its public line; created once, kept across `lab up` runs."""
    private_path = directory / "id_ed25519"
    public_path = directory / "id_ed25519.pub"
    if not private_path.exists():
        private, public = new_ed25519()
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private)
        public_path.write_text(public + " orthanc-harden-lab\n")
    return private_path, public_path.read_text().split(" orthanc-harden-lab")[0].strip()


def write_known_hosts(path: Path, entries: list[tuple[str, int, str]]) -> None:
    """entries: (address, port, public key line); ports other than 22 use OpenSSH's [addr]:port form."""
    lines = []
    for address, port, public in entries:
        name = address if port == 22 else f"[{address}]:{port}"
        lines.append(f"{name} {public}")
    write_private(path, "".join(line + "\n" for line in lines))
