#!/usr/bin/env python3
"""Ansible dynamic inventory of a Molecule scenario's lab: `ansible-inventory -i lab_inventory.py --list`.

Molecule links it into the scenario's inventory directory, so its playbooks and the testinfra verifier reach the
same hosts that `orthanc-harden lab up` made, with the ports, key and known_hosts the lab wrote: nothing about the
lab is copied into the scenario files. ORTHANC_HARDEN_LAB names the lab and MOLECULE_LAB_KIND (package|container)
the kind of host the scenario is about. Before `lab up` (Molecule's first destroy) the inventory is empty.
"""

import json
import os
import shlex
import sys

from orthanc_harden.lab import state


def _package_host(data: dict, entry: dict) -> dict:
    # Strict host keys against the lab's own known_hosts: Molecule's default (no checking) is not used.
    ssh_args = ["-o", f"UserKnownHostsFile={data['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes"]
    return {"ansible_host": "127.0.0.1", "ansible_port": entry["ssh_port"], "ansible_user": "root",
            "ansible_ssh_private_key_file": data["ssh_key"], "ansible_ssh_common_args": shlex.join(ssh_args),
            "ansible_python_interpreter": "/usr/bin/python3"}


def _container_host(entry: dict) -> dict:
    # No Ansible connection plugin is needed for this: only testinfra uses it (`docker exec`), the playbooks
    # reach the container through the lab's mounted configuration directory and the docker CLI.
    return {"ansible_connection": "docker", "ansible_host": entry["container"], "lab_config_dir": entry["config_dir"]}


def inventory() -> dict:
    kind = os.environ.get("MOLECULE_LAB_KIND", "package")
    data = state.load(state.lab_dir(os.environ.get("ORTHANC_HARDEN_LAB", "")))
    if data is None:
        return {"_meta": {"hostvars": {}}}
    entries = data["hosts"] if kind == "package" else data["containers"]
    hostvars = {}
    for entry in entries:
        own = _package_host(data, entry) if kind == "package" else _container_host(entry)
        hostvars[entry["name"]] = {**own, "lab_container": entry["container"],
                                   "orthanc_url": f"http://127.0.0.1:{entry['http_port']}",
                                   "seeded_instances": entry["seeded_instances"], "lab_subnet": data["subnet"]}
    return {f"{kind}_hosts": {"hosts": sorted(hostvars)}, "_meta": {"hostvars": hostvars}}


if __name__ == "__main__":
    if "--host" in sys.argv:
        name = sys.argv[sys.argv.index("--host") + 1]
        print(json.dumps(inventory()["_meta"]["hostvars"].get(name, {})))
    else:
        print(json.dumps(inventory(), indent=2))
