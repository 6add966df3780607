"""ansible-vault: references: an Ansible Vault encrypted YAML file, decrypted with ansible-core's VaultLib."""

from __future__ import annotations

from contextlib import contextmanager

from . import Reference, SecretError, dig


@contextmanager
def importing_ansible():
    """ansible-core 2.19 probes socket.getaddrinfo when imported; gevent's (patched in by the CLI) fails the probe
    in a worker thread, which gevent prints as a traceback. The probe gets the system's own function."""
    import socket

    try:
        from gevent import monkey
    except ImportError:
        yield
        return
    if not monkey.is_module_patched("socket"):
        yield
        return
    patched = socket.getaddrinfo
    socket.getaddrinfo = monkey.get_original("socket", "getaddrinfo")
    try:
        yield
    finally:
        socket.getaddrinfo = patched


def vault_password(environ, label: str) -> bytes:
    """The vault password from its sources, for this store and for !vault values of Ansible inventories."""
    if environ.get("ORTHANC_HARDEN_VAULT_PASSWORD"):
        return environ["ORTHANC_HARDEN_VAULT_PASSWORD"].encode()
    path = environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not path:
        raise SecretError(f"{label}: set ANSIBLE_VAULT_PASSWORD_FILE or ORTHANC_HARDEN_VAULT_PASSWORD")
    try:
        with open(path, "rb") as handle:
            return handle.read().strip()
    except OSError as err:
        raise SecretError(f"{label}: vault password file: {err.strerror}") from None


def read(ref: Reference, environ) -> object:
    import yaml

    with importing_ansible():
        from ansible.constants import DEFAULT_VAULT_ID_MATCH
        from ansible.errors import AnsibleError
        from ansible.parsing.vault import VaultLib, VaultSecret

    try:
        with open(ref.path, "rb") as handle:
            blob = handle.read()
    except OSError as err:
        raise SecretError(f"{ref.text}: {err.strerror}") from None
    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(vault_password(environ, ref.text)))])
    try:
        plain = vault.decrypt(blob)
    except AnsibleError:
        raise SecretError(f"{ref.text}: cannot decrypt (wrong vault password, or not a vault file)") from None
    try:
        return dig(yaml.safe_load(plain), ref)
    except yaml.YAMLError:
        raise SecretError(f"{ref.text}: the decrypted file is not YAML") from None
