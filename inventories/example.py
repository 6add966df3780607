"""Example fleet inventory: copy it, replace the names and references, and point the commands at your copy.

    orthanc-harden audit inventories/example.py
    orthanc-harden remediate inventories/example.py --dry

Group data sits in the tuples here for one readable file; `group_data/<group>.py` files work the same way. Every
setting and its default: the README's settings table. No password is ever written here: `orthanc_harden_users_ref`
names where the users live, and the reference is resolved on the control node at run time.
"""

# SSH reach shared by every package host (pyinfra's paramiko connector).
_ssh = {
    "ssh_user": "deploy",
    "_sudo": True,
    "ssh_key": "/etc/orthanc-harden/id_ed25519",
    "ssh_known_hosts_file": "/etc/orthanc-harden/known_hosts",
    "ssh_strict_host_key_checking": "yes",
}

# Production PACS: Debian/Ubuntu or RHEL-family servers running the orthanc package.
pacs_servers = (
    [
        ("pacs-01.example.org", {}),
        ("pacs-02.example.org", {"orthanc_harden_firewall_backend": "nftables"}),
    ],
    {
        **_ssh,
        "orthanc_harden_min_version": "1.12.0",
        "orthanc_harden_users_ref": "vault:secret/orthanc/prod#users",
        "orthanc_harden_allowed_cidrs": ["10.20.0.0/16", "fd00:20::/48"],
    },
)

# A research Orthanc behind its own reverse proxy: the proxy filters the network, so the firewall control is
# waived with the reason, and reported as waived.
research_servers = (
    [("research-orthanc.example.org", {})],
    {
        **_ssh,
        "orthanc_harden_users_ref": "sops:/etc/orthanc-harden/research.sops.yaml#orthanc.users",
        "orthanc_harden_firewall_enabled": False,
        "orthanc_harden_waivers": {"firewall": "reachable only through the nginx proxy on the same host (CHG-2210)"},
    },
)

# Orthanc containers, reached through each host's Docker Engine API, no shell (@dockerengine); ssh:// reuses
# the SSH settings above.
container_hosts = (
    [
        ("@dockerengine/docker-01", {"orthanc_harden_docker_url": "ssh://deploy@docker-01.example.org",
                                     "ssh_hostname": "docker-01.example.org"}),
        ("@dockerengine/docker-02", {
            "orthanc_harden_docker_url": "tcp://docker-02.example.org:2376",
            "orthanc_harden_docker_tls": {"ca": "/etc/orthanc-harden/docker/ca.pem",
                                          "cert": "/etc/orthanc-harden/docker/cert.pem",
                                          "key": "/etc/orthanc-harden/docker/key.pem"},
        }),
    ],
    {
        **_ssh,
        "orthanc_harden_docker_filters": {"label": "pacs=prod"},
        # Below the version floor a container is recreated from its family's image, here a private mirror.
        "orthanc_harden_docker_images": {"orthancteam": "registry.example.org/orthancteam/orthanc:24.1.2",
                                         "jodogne": "registry.example.org/jodogne/orthanc:1.12.4"},
        "orthanc_harden_users_ref": "pass:orthanc/containers",
        "orthanc_harden_allowed_cidrs": ["10.20.0.0/16"],
    },
)
