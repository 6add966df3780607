"""Reach a host's Docker engine with the docker SDK: unix://, tcp:// with TLS client certificates, or ssh://.

ssh:// reuses the inventory's SSH settings (user, port, key, known_hosts, strict host key checking) instead of the
SDK's own ``~/.ssh/config`` lookup, so an engine is reached exactly as pyinfra reaches the host. Programs that embed
pyinfra must monkey-patch gevent before this module imports docker, or hosts are served one after another.
"""

from __future__ import annotations

import urllib.parse

import docker
import paramiko
from docker.transport import SSHHTTPAdapter

from .. import run_record, settings

API_VERSION = "1.41"  # Docker 20.10; every call made here exists since then


class EngineError(ConnectionError):
    """The engine cannot be reached or refused us; the message names the engine and the cause."""


class _InventorySSHAdapter(SSHHTTPAdapter):
    """The SDK's paramiko transport (``docker system dial-stdio`` on the host), with our SSH settings."""

    def __init__(self, base_url: str, ssh: dict, timeout: int):
        self._inventory_ssh = ssh
        super().__init__(base_url, timeout=timeout)

    def _create_paramiko_client(self, base_url):
        url = urllib.parse.urlparse(base_url)
        ssh = self._inventory_ssh
        self.ssh_client = paramiko.SSHClient()
        if ssh.get("known_hosts"):
            self.ssh_client.load_host_keys(ssh["known_hosts"])
        else:
            self.ssh_client.load_system_host_keys()
        strict = str(ssh.get("strict", "yes")).lower() not in ("no", "off", "false")
        self.ssh_client.set_missing_host_key_policy(paramiko.RejectPolicy() if strict else paramiko.AutoAddPolicy())
        self.ssh_params = {
            "hostname": ssh.get("hostname") or url.hostname,
            "port": ssh.get("port") or url.port or 22,
            "username": ssh.get("user") or url.username,
            "key_filename": ssh.get("key"),
            "allow_agent": ssh.get("allow_agent", True),
            "look_for_keys": ssh.get("look_for_keys", True),
            "timeout": 15,
        }


# The host data of pyinfra's @ssh connector that an ssh:// engine is reached with: {key: (description, default)}.
# Unlike pyinfra's (accept-new), the default refuses a host key that is not known.
SSH_DATA = {
    "ssh_hostname": ("ssh:// engine: SSH host name or address (default: the URL's host)", None),
    "ssh_port": ("ssh:// engine: SSH port (default: the URL's port, else 22)", None),
    "ssh_user": ("ssh:// engine: SSH user (default: the URL's user)", None),
    "ssh_key": ("ssh:// engine: SSH private key file", None),
    "ssh_known_hosts_file": ("ssh:// engine: known_hosts file holding its host key (default: the system's)", None),
    "ssh_strict_host_key_checking": ("ssh:// engine: `no` or `off` accepts an unknown host key; anything else "
                                     "refuses it", "yes"),
    "ssh_allow_agent": ("ssh:// engine: use the SSH agent's keys", True),
    "ssh_look_for_keys": ("ssh:// engine: try the keys in ~/.ssh", True),
}


def _ssh_settings(data) -> dict:
    """The pyinfra SSH connector's host data, as the engine transport needs it."""

    def value(key):
        given = data.get(key)
        return SSH_DATA[key][1] if given is None else given

    return {
        "hostname": value("ssh_hostname"), "port": value("ssh_port"), "user": value("ssh_user"),
        "key": value("ssh_key"), "known_hosts": value("ssh_known_hosts_file"),
        "strict": value("ssh_strict_host_key_checking"),
        "allow_agent": value("ssh_allow_agent"), "look_for_keys": value("ssh_look_for_keys"),
    }


def connect(url: str, tls: dict | None = None, ssh: dict | None = None, timeout: int = 60) -> docker.DockerClient:
    """A client for `url`; raises EngineError (never a traceback) when the engine does not answer."""
    try:
        if url.startswith("ssh://"):
            # Built with a placeholder address that is never contacted, then pointed at the SSH transport.
            client = docker.DockerClient(base_url="tcp://127.0.0.1:9", version=API_VERSION, timeout=timeout)
            adapter = _InventorySSHAdapter(url, ssh or {}, timeout)
            client.api.mount("http+docker://ssh", adapter)
            client.api.base_url = "http+docker://ssh"
            client.api._custom_adapter = adapter
        else:
            tls_config = None
            if tls:
                tls_config = docker.tls.TLSConfig(client_cert=(tls["cert"], tls["key"]), ca_cert=tls["ca"],
                                                  verify=True)
            client = docker.DockerClient(base_url=url, tls=tls_config, version=API_VERSION, timeout=timeout)
            if tls_config:
                # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (common on control nodes) replace the
                # engine's own CA for every call, so verification fails or, worse, trusts the wrong CA.
                client.api.trust_env = False
        client.ping()
    except (docker.errors.DockerException, paramiko.SSHException, OSError, KeyError) as err:
        raise EngineError(f"Docker engine {url} not reachable: {_reason(err)}") from None
    return client


# The host data open_for reads beside SSH_DATA (their defaults and descriptions are in settings.py).
ENGINE_SETTINGS = ("orthanc_harden_docker_url", "orthanc_harden_docker_tls", "orthanc_harden_docker_insecure")


def open_for(data, timeout: int = 60) -> docker.DockerClient:
    """A new, pinged client for a container host's engine, from its ``orthanc_harden_docker_*`` and ``ssh_*`` host
    data (``shared_for`` keeps one per host for a run)."""
    url, tls = settings.get(data, "orthanc_harden_docker_url"), settings.get(data, "orthanc_harden_docker_tls")
    refused = settings.plain_tcp_engine(url, tls, settings.get(data, "orthanc_harden_docker_insecure"))
    if refused:  # before any connection: nothing is sent to such an engine
        raise EngineError(refused)
    return connect(url, tls, _ssh_settings(data), timeout)


def of_connector(host) -> docker.DockerClient | None:
    """The client an ``@dockerengine`` host's connector opened and pinged; None for any other host."""
    return getattr(getattr(host, "connector", None), "client", None)


def address(client: docker.DockerClient) -> str | None:
    """Where a port the engine publishes on every address is reached: the engine's own host name or address
    (127.0.0.1 for a local socket)."""
    api = client.api
    adapter = getattr(api, "_custom_adapter", None)
    if isinstance(adapter, SSHHTTPAdapter):  # the SDK keeps "user@host:port" of the ssh:// URL
        return urllib.parse.urlparse(f"ssh://{adapter.ssh_host}").hostname
    if api.base_url.startswith("http+docker://"):  # a unix socket (or a Windows named pipe): this machine
        return "127.0.0.1"
    return urllib.parse.urlparse(api.base_url).hostname


def shared_for(host, timeout: int = 60) -> docker.DockerClient:
    """The engine of a pyinfra host, opened once per run and shared by the plan and execute passes.

    An ``@dockerengine`` host already holds the client its connector opened and pinged; any other container host
    (an SSH host with ``orthanc_harden_docker_url``) gets one client for the whole run.
    """
    client = of_connector(host)
    if client is not None:
        return client
    opened = run_record.current().engines  # once per run: another run opens its own
    key = (host.name, settings.get(host.data, "orthanc_harden_docker_url"))
    if key not in opened:
        opened[key] = open_for(host.data, timeout)
    return opened[key]


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:300]
