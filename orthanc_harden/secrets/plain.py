"""env: and file: references."""

from __future__ import annotations

import os
import stat

from . import Reference, SecretError, dig, parse_mapping


def from_env(ref: Reference, environ) -> object:
    if ref.path not in environ:
        raise SecretError(f"{ref.text}: environment variable {ref.path} is not set")
    return dig(parse_mapping(environ[ref.path], ref, yaml_ok=False), ref)


def from_file(ref: Reference, environ) -> object:
    try:
        info = os.stat(ref.path)
    except OSError as err:
        raise SecretError(f"{ref.text}: {err.strerror}") from None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise SecretError(f"{ref.text}: mode {mode:04o} lets group or others read or write it; chmod 600 it first")
    if info.st_uid != os.geteuid():
        raise SecretError(f"{ref.text}: owned by uid {info.st_uid}, not by the user running orthanc-harden")
    with open(ref.path, encoding="utf-8") as handle:
        text = handle.read()
    return dig(parse_mapping(text, ref, yaml_ok=ref.path.endswith((".yml", ".yaml"))), ref)
