"""The same hosts as a pyinfra inventory and as an Ansible inventory, written into the run's directory: root
logins, sudo logins (pyinfra's _sudo, Ansible's become) and hosts whose sshd listens on another port.

Both hold only addresses, ports, key and known_hosts paths and the users' secret reference: no secret.
Strict host keys on both sides, from the known_hosts file the bench wrote, so neither tool learns keys on the fly.
"""

from __future__ import annotations

import json
import pprint
from pathlib import Path

from .hosts import Fleet
from .store import Store


def pyinfra_inventory(fleet: Fleet, store: Store, path: Path) -> Path:
    """A Python inventory with one group, ``bench_hosts``, the way inventories/lab.py describes lab hosts."""
    hosts = []
    for host in fleet.hosts:
        hosts.append((host.name, {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": host.ssh_port,
            "ssh_user": host.login,
            **({"_sudo": True} if host.login != "root" else {}),
            "ssh_key": str(fleet.key_path),
            "ssh_known_hosts_file": str(fleet.known_hosts),
            "ssh_strict_host_key_checking": "yes",
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
            "orthanc_harden_probe_url": f"http://127.0.0.1:{host.http_port}",
            # Control-node traffic reaches the hosts through the bench network's gateway, as in the lab.
            "orthanc_harden_allowed_cidrs": [fleet.subnet],
            "orthanc_harden_firewall_enable": True,
            "orthanc_harden_users_ref": store.ref,
        }))
    # pformat writes Python literals (True, not true): the inventory is a Python file.
    path.write_text('"""orthanc-harden bench hosts (generated)."""\n\n'
                    f"bench_hosts = {pprint.pformat(hosts, width=120)}\n")
    return path


def ansible_inventory(fleet: Fleet, path: Path) -> Path:
    """YAML (written as JSON, which YAML reads) with group ``orthanc`` and the same connection settings."""
    known = fleet.known_hosts

    def host_vars(h) -> dict:
        data = {"ansible_host": "127.0.0.1", "ansible_port": h.ssh_port, "orthanc_probe_port": h.http_port}
        if h.login != "root":
            data.update(ansible_user=h.login, ansible_become=True)
        if h.sshd_port != 22:
            data["orthanc_sshd_port"] = h.sshd_port  # what the host's own firewall must keep open for SSH
        return data

    inventory = {"all": {"children": {"orthanc": {
        "hosts": {h.name: host_vars(h) for h in fleet.hosts},
        "vars": {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(fleet.key_path),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes "
                                       "-o IdentitiesOnly=yes",
            # Set explicitly, as inventories commonly do: discovery would add one command per host.
            "ansible_python_interpreter": "/usr/bin/python3",
            "orthanc_allowed_cidrs": [fleet.subnet],
        },
    }}}}
    path.write_text(json.dumps(inventory, indent=1) + "\n")
    return path
