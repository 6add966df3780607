"""Lab host variants for the firewall's no-lockout tests: real changes made inside a lab host over SSH.

sshd moved off port 22: the lab publishes each host's container port 22 on 127.0.0.1, so a host whose sshd listens
on 2222 only is reached on its address on the lab's own docker network, trusted with the lab's own host key.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.conftest import run_on, ssh_to

SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-orthanc-harden-test-port.conf"


def known_hosts_at(lab: dict, entry: dict, address: str, port: int, path: Path) -> Path:
    """A known_hosts file naming `address`:`port` with the host key the lab recorded for `entry` (no first use)."""
    marker = f"[127.0.0.1]:{entry['ssh_port']} "
    lines = [line for line in Path(lab["known_hosts"]).read_text().splitlines() if line.startswith(marker)]
    assert len(lines) == 1, f"the lab's known_hosts has no single key for {entry['name']}"
    path.write_text(f"[{address}]:{port} {lines[0][len(marker):]}\n")
    path.chmod(0o600)
    return path


def connect(lab: dict, address: str, port: int, known_hosts: Path, timeout: float = 10):
    """A fresh paramiko client as root, trusting only `known_hosts`."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(address, port=port, username="root", key_filename=lab["ssh_key"], allow_agent=False,
                   look_for_keys=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
    return client


def sshd_on_port(lab: dict, entry: dict, port: int, known_hosts: Path) -> dict:
    """Make `entry`'s sshd listen on `port` only (not 22) and return the host data that reaches it there:
    its address on the lab network, that port, and a known_hosts file with its lab host key."""
    client = ssh_to(lab, entry)
    try:
        code, out = run_on(client, f"printf 'Port {port}\\n' > {SSHD_DROPIN} && sshd -t && systemctl restart ssh")
        assert code == 0, out
    finally:
        client.close()
    known_hosts_at(lab, entry, entry["ip"], port, known_hosts)
    deadline = time.monotonic() + 30
    while True:
        try:
            connect(lab, entry["ip"], port, known_hosts).close()
            break
        except Exception:  # noqa: BLE001 - sshd restarting; bounded by the deadline
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return {"ssh_hostname": entry["ip"], "ssh_port": port, "ssh_known_hosts_file": str(known_hosts)}


def sshd_listening(client) -> str:
    return run_on(client, "ss -Hltn")[1]
