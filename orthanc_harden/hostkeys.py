"""Unattended runs send the store's passwords to every host: they must know each host's key beforehand."""

from __future__ import annotations

import os

# A scheduled run that trusts host keys on first use (pyinfra's default, accept-new) would hand the passwords to
# whatever machine answers at a host's address the first time it is seen.
STRICT = ("yes", "true")


def unverified_ssh_hosts(inventory_path: str) -> list[str]:
    """Hosts of the inventory reached over SSH (directly or by an ssh:// Docker engine) without strict host key
    checking against a known_hosts file."""
    from .ansible_inventory import make_inventory

    inventory = make_inventory(inventory_path, cwd=os.path.dirname(os.path.abspath(inventory_path)))
    unverified = []
    for host in inventory:
        over_ssh = not host.name.startswith("@") or host.name.startswith("@ssh/")
        if not over_ssh and not str(host.data.get("orthanc_harden_docker_url") or "").startswith("ssh://"):
            continue
        strict = str(host.data.get("ssh_strict_host_key_checking") or "accept-new").lower()
        if strict not in STRICT or not host.data.get("ssh_known_hosts_file"):
            unverified.append(host.name)
    return sorted(unverified)
