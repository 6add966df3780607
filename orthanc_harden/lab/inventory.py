"""Turn the lab's saved state into pyinfra inventory groups (used by inventories/lab.py)."""

from __future__ import annotations

import os

from . import state
from .errors import LabError


def groups(lab: str = state.DEFAULT_LAB) -> dict[str, list]:
    """{"package_hosts": [(name, data)], "container_engines": [(name, data)]} for a lab that is up."""
    directory = state.lab_dir(lab)
    data = state.load(directory)
    if data is None:
        raise LabError(f"no lab named {lab!r} is up ({state.state_file(directory)} is missing): "
                       "run `orthanc-harden lab up` first")
    # Lab-wide hardening data: the lab's own network may reach Orthanc (the control node comes in through its
    # gateway), ufw may be enabled (SSH is allowed first), users come from the reference the operator exports.
    users = ({"orthanc_harden_users_ref": os.environ["ORTHANC_HARDEN_LAB_USERS_REF"]}
             if os.environ.get("ORTHANC_HARDEN_LAB_USERS_REF") else {})
    hardening = {"orthanc_harden_firewall_enable": True, **users}
    if data.get("subnet"):
        hardening["orthanc_harden_allowed_cidrs"] = [data["subnet"]]
    package_hosts = [
        (entry["name"], {
            **hardening,
            "ssh_hostname": "127.0.0.1",
            "ssh_port": entry["ssh_port"],
            "ssh_user": "root",
            "ssh_key": data["ssh_key"],
            "ssh_known_hosts_file": data["known_hosts"],
            "ssh_strict_host_key_checking": "yes",
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
            "orthanc_harden_probe_url": f"http://127.0.0.1:{entry['http_port']}",
            "lab_ip": entry["ip"],
        })
        for entry in data["hosts"]
    ]
    # The lab's Orthanc containers run on this machine's engine: the control node reaches it over the unix socket,
    # as an engine-only host (no shell; see orthanc_harden.docker.connector).
    container_engines = []
    if data["containers"]:
        container_engines.append((f"@dockerengine/{lab}-engine", {
            **users,  # the firewall is the host's: an engine-only host has none to set
            "orthanc_harden_docker_url": data["docker_host"],
            "orthanc_harden_docker_filters": {"label": f"{state.LABEL}={lab}"},
            # The lab's old container is upgraded to the fixed image the lab tagged (see lab.old_members).
            "orthanc_harden_docker_images": ({"jodogne": data["images"]["container-fixed"]}
                                             if data["images"].get("container-fixed") else {}),
            "orthanc_harden_probe_urls": {c["container"]: f"http://127.0.0.1:{c['http_port']}"
                                          for c in data["containers"]},
        }))
    return {"package_hosts": package_hosts, "container_engines": container_engines}
