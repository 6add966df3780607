"""Orthanc users (name -> password) from a secret store, named by one reference string in host or group data.

    env:ORTHANC_USERS                      a JSON object in an environment variable
    file:/etc/orthanc-harden/users.json    JSON (or YAML for .yml/.yaml), owner-only (mode 0600 or stricter)
    vault:secret/orthanc/prod[#key]        HashiCorp Vault / OpenBao KV v2 (alias bao:)
    ansible-vault:/path/vault.yml#key      an Ansible Vault encrypted YAML file
    sops:/path/secrets.yaml#key            a SOPS file (age, PGP ...), decrypted by the `sops` binary
    pass:orthanc/prod                      an entry of the standard Unix password store

Resolve on the control node, once per reference and run (``SecretCache``), before any host is touched. Values
come back as pyinfra ``HiddenValue``; errors are one line naming the reference and the cause, never a value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyinfra.api import HiddenValue

from .. import run_record, settings

SCHEMES = ("env", "file", "vault", "bao", "ansible-vault", "sops", "pass")


class SecretError(Exception):
    """A reference that cannot be resolved; the message is one line and never holds a secret value."""


@dataclass(frozen=True)
class Reference:
    scheme: str
    path: str
    key: str | None
    text: str


def parse_reference(ref: str) -> Reference:
    # A value that is not a reference may be the secret itself (users pasted in place of a reference): it is
    # never repeated in a message, only what a reference looks like.
    form = f"scheme:path[#key] with a scheme among {', '.join(SCHEMES)}; the value is not shown"
    if not isinstance(ref, str) or ":" not in ref:
        raise SecretError(f"orthanc_harden_users_ref is not a secret reference ({form})")
    scheme, _, rest = ref.partition(":")
    if scheme not in SCHEMES:
        raise SecretError(f"orthanc_harden_users_ref has an unknown scheme ({form})")
    path, _, key = rest.partition("#")
    if not path:
        raise SecretError(f"orthanc_harden_users_ref {scheme}: names no path ({form})")
    return Reference("vault" if scheme == "bao" else scheme, path, key or None, ref)


def parse_mapping(text: str, ref: Reference, yaml_ok: bool = True):
    """JSON object text, or a YAML mapping where allowed."""
    try:
        return json.loads(text)
    except ValueError:
        if not yaml_ok:
            raise SecretError(f"{ref.text}: the value is not a JSON object") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise SecretError(f"{ref.text}: the value is neither JSON nor YAML") from None


def dig(data, ref: Reference):
    """Follow the reference's #dotted.key into decrypted data."""
    if ref.key is None:
        return data
    for part in ref.key.split("."):
        if not isinstance(data, dict) or part not in data:
            raise SecretError(f"{ref.text}: key {ref.key!r} not found")
        data = data[part]
    return data


def users_from(value, ref: Reference) -> dict[str, HiddenValue]:
    if isinstance(value, str):
        value = parse_mapping(value, ref)
    if not isinstance(value, dict) or not value:
        raise SecretError(f"{ref.text}: expected a non-empty mapping of user name to password")
    users = {}
    for name, password in value.items():
        if not settings.user_name(name):
            raise SecretError(f"{ref.text}: user names must be non-empty strings without ':' (HTTP basic auth)")
        if not isinstance(password, str) or not password:
            raise SecretError(f"{ref.text}: the password of user {name!r} must be a non-empty string")
        users[name] = HiddenValue(password)
    return users


def resolve_users(ref: str, *, environ: dict | None = None) -> dict[str, HiddenValue]:
    """The users a reference names, as {name: HiddenValue(password)}."""
    import os

    from . import ansible_vault, passstore, plain, sops, vault

    parsed = parse_reference(ref)
    environ = os.environ if environ is None else environ
    backend = {"env": plain.from_env, "file": plain.from_file, "vault": vault.read, "sops": sops.read,
               "ansible-vault": ansible_vault.read, "pass": passstore.read}[parsed.scheme]
    return users_from(backend(parsed, environ), parsed)


class SecretCache:
    """Resolve each distinct reference once per run; a fleet run fills it before touching any host."""

    def __init__(self, environ: dict | None = None):
        self._environ = environ
        self._resolved: dict[str, dict[str, HiddenValue]] = {}

    def users(self, ref: str) -> dict[str, HiddenValue]:
        if ref not in self._resolved:
            self._resolved[ref] = resolve_users(ref, environ=self._environ)
        return self._resolved[ref]

    def values(self) -> list[str]:
        """Every password resolved in this run, to scrub from tracebacks kept for reports."""
        return [password.unmask() for users in self._resolved.values() for password in users.values()]

    def resolve_all(self, refs) -> None:
        for ref in sorted(set(refs)):
            self.users(ref)


class _RunCache:
    """The ``SecretCache`` of the run pyinfra is planning or executing now (``run_record``): pyinfra executes a
    deploy file once per host, and the run's cache makes "once per run" hold across its hosts, never across runs."""

    def __getattr__(self, name: str):
        record = run_record.current()
        if record.secrets is None:
            record.secrets = SecretCache()
        return getattr(record.secrets, name)


RUN_CACHE = _RunCache()


def resolved_values() -> list[str]:
    """Every password any run still held in this process has resolved, to scrub from what is logged or kept:
    masking never depends on which run is current when a line is written."""
    return [value for record in run_record.live() if record.secrets is not None
            for value in record.secrets.values()]
