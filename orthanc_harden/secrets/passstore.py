"""pass: references: an entry of the standard Unix password store (gpg-encrypted), holding a JSON/YAML mapping."""

from __future__ import annotations

import shutil
import subprocess

from . import Reference, SecretError, dig, parse_mapping

TIMEOUT = 60


def read(ref: Reference, environ) -> object:
    if shutil.which("pass") is None:
        raise SecretError(f"{ref.text}: the pass command is not installed")
    try:
        proc = subprocess.run(["pass", "show", ref.path], capture_output=True, text=True, timeout=TIMEOUT,
                              env=dict(environ), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SecretError(f"{ref.text}: pass did not answer within {TIMEOUT}s (a locked gpg key?)") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        raise SecretError(f"{ref.text}: pass could not show it ({lines[0][:160] if lines else 'no message'})")
    return dig(parse_mapping(proc.stdout, ref), ref)
