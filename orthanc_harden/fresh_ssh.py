"""Open a new SSH connection to a host the run is connected to, to prove a firewall change left SSH usable.

The new connection is built the way pyinfra built the running one (its ``SSHConnector`` from the host's data:
hostname, port, user, key, ssh_config with ProxyJump, known_hosts), and it trusts exactly the host key the running
session verified: a key in known_hosts must match as usual, and a host missing from them is accepted only with
that same key. It never adds anything to known_hosts (no trust on first use).
"""

from __future__ import annotations

import logging
import socket

from paramiko import MissingHostKeyPolicy, SSHException
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.connectors.sshuserclient.client import SSHClient


# paramiko's transport thread logs a refused connection with a traceback; the cause goes into the host's one line.
_LOG_CHANNEL = "orthanc_harden.fresh_ssh.paramiko"
logging.getLogger(_LOG_CHANNEL).propagate = False
logging.getLogger(_LOG_CHANNEL).addHandler(logging.NullHandler())


class _SessionKeyOnly(MissingHostKeyPolicy):
    def __init__(self, key):
        self.key = key

    def missing_host_key(self, client, hostname, key):
        if self.key is None or key.get_name() != self.key.get_name() or key.asbytes() != self.key.asbytes():
            raise SSHException(f"{hostname} presented a host key other than the running session's")


class _PinnedClient(SSHClient):
    """pyinfra's client (ssh_config, ProxyJump) with the session-key policy in place of the data's policy."""

    def __init__(self, key):
        super().__init__()
        self._pinned = _SessionKeyOnly(key)

    def set_missing_host_key_policy(self, policy):
        super().set_missing_host_key_policy(self._pinned)


def applies(host) -> bool:
    """Only a host reached over SSH has a session a firewall can cut (``@local`` and ``@dockerengine`` do not)."""
    return isinstance(host.connector, SSHConnector)


def connect_again(host, timeout: float = 15) -> str | None:
    """None when a new SSH connection to `host` logs in and runs a command; otherwise why it did not."""
    running = host.connector.client.get_transport() if host.connector.client else None
    key = running.get_remote_server_key() if running else None
    kwargs = SSHConnector(host.state, host).make_paramiko_kwargs()
    hostname = kwargs.pop("hostname")
    kwargs.update(timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
    client = _PinnedClient(key)
    client.set_log_channel(_LOG_CHANNEL)
    try:
        client.connect(hostname, **kwargs)
        _, stdout, _ = client.exec_command("true", timeout=timeout)
        status = stdout.channel.recv_exit_status()
        return None if status == 0 else f"a command over it exited {status}"
    except (OSError, EOFError, SSHException, socket.timeout) as err:
        return f"{type(err).__name__}: {err}".rstrip(": ")
    finally:
        client.close()
