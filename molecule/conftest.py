"""Shared fixtures of the scenarios' testinfra checks (molecule/*/tests), run by Molecule's verify step.

Independent of the remediation code on purpose: which host and port, and which DICOM instances the lab seeded, come
from the scenario's Ansible inventory (molecule/shared/lab_inventory.py); the user from the Ansible Vault file that
create.yml wrote, decrypted with ansible-core; everything else from the hosts themselves and plain HTTP.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
# The checks both scenarios share (molecule/shared/http_checks.py), importable from their tests modules.
sys.path.insert(0, str(Path(__file__).resolve().parent / "shared"))


class Orthanc:
    """GET on the Orthanc REST API from the control node; a bounded wait (60 s) rides out a restart."""

    def __init__(self, url: str):
        self.url = url

    def get(self, path: str, auth: tuple[str, str] | None = None) -> requests.Response:
        deadline = time.monotonic() + 60
        while True:
            try:
                return requests.get(self.url + path, auth=auth, timeout=10)
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)


@pytest.fixture(scope="module")
def lab_vars(host) -> dict:
    """This host's inventory variables: orthanc_url, seeded_instances, lab_subnet, lab_container."""
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def orthanc(lab_vars) -> Orthanc:
    return Orthanc(lab_vars["orthanc_url"])


@pytest.fixture(scope="session")
def store_user() -> tuple[str, str]:
    """(name, password) of the user in the scenario's Ansible Vault."""
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    secrets = EPHEMERAL / "secrets"
    if not (secrets / "users.vault.yml").exists():
        pytest.fail(f"no users vault in {secrets}: run `molecule create` first")
    secret = VaultSecret((secrets / "vault-password").read_bytes().strip())
    plain = VaultLib([(DEFAULT_VAULT_ID_MATCH, secret)]).decrypt((secrets / "users.vault.yml").read_bytes())
    users = yaml.safe_load(plain)["orthanc_users"]
    assert len(users) == 1
    return next(iter(users.items()))


@pytest.fixture(scope="session")
def converge_output() -> str:
    """Everything pyinfra printed in this scenario's converge and idempotence runs."""
    logs = sorted((EPHEMERAL / "converge-logs").glob("*.log"))
    if not logs:
        pytest.fail("no converge output kept: run `molecule converge` first")
    return "".join(log.read_text() for log in logs)
