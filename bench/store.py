"""The Orthanc users of a bench run, in one secret store that both tools read.

- ``file`` (default): an owner-only (0600) YAML file. orthanc-harden reads it through its ``file:`` reference,
  Ansible through ``vars_files``. The cheapest store for both, so the bench measures the tools, not the store.
- ``ansible-vault``: the same file encrypted with Ansible Vault. orthanc-harden reads it through its
  ``ansible-vault:`` reference, which imports ansible-core into its process (tens of MB and about a second of
  CPU per run, measured as orthanc-harden's); Ansible reads it natively.

Both tools take the vault password from the file named by ``ANSIBLE_VAULT_PASSWORD_FILE``. No password is ever
on a command line, in an inventory or in the results, and the two tools get exactly the same users.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from orthanc_harden.private_files import write_private

USER = "bench-radiology"
KEY = "orthanc_users"
KINDS = ("file", "ansible-vault")


@dataclass(frozen=True)
class Store:
    kind: str
    users_file: Path
    password_file: Path | None = None

    @property
    def ref(self) -> str:
        """The reference orthanc-harden resolves (host data ``orthanc_harden_users_ref``)."""
        return f"{self.kind}:{self.users_file}#{KEY}"

    @property
    def env(self) -> dict[str, str]:
        return {"ANSIBLE_VAULT_PASSWORD_FILE": str(self.password_file)} if self.password_file else {}

    def credentials(self) -> tuple[str, str]:
        """(user, password) for the harness's own check that a host lets the store's user in; memory only."""
        from orthanc_harden.secrets import resolve_users

        users = resolve_users(self.ref, environ=self.env)
        return USER, users[USER].unmask()


def create(workdir: Path, kind: str = "file") -> Store:
    """A random user password (and vault password), written owner-only (0600)."""
    if kind not in KINDS:
        raise ValueError(f"store must be one of {', '.join(KINDS)}")
    plain = yaml.safe_dump({KEY: {USER: secrets.token_urlsafe(24)}})
    users_file = workdir / "users.yml"
    if kind == "file":
        write_private(users_file, plain)
        return Store(kind, users_file)
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault_password = secrets.token_urlsafe(32)
    password_file = workdir / "vault-password"
    write_private(password_file, vault_password + "\n")
    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(vault_password.encode()))])
    write_private(users_file, vault.encrypt(plain).decode())
    return Store(kind, users_file, password_file)
