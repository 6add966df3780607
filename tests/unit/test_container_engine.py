"""operations.container.orthanc takes its Docker engine as an argument (#22), like auth, upgrade and firewall take
theirs: no hidden host data. The default is the engine an ``@dockerengine`` host's connector opened."""

from __future__ import annotations

import docker
from docker.errors import NotFound
from docker.transport import SSHHTTPAdapter
from pyinfra.api import HiddenValue
from pyinfra.context import ctx_host

from orthanc_harden import outcomes
from orthanc_harden.docker import engine
from orthanc_harden.operations import container

USERS = {"radiology": HiddenValue("pw")}


class EmptyEngine:
    """An engine without containers that remembers which names it was asked for."""

    def __init__(self):
        self.asked = []
        self.containers = self

    def get(self, name):
        self.asked.append(name)
        raise NotFound(f"No such container: {name}")


class Host:
    def __init__(self, data: dict, connector=None):
        self.name, self.data, self.connector, self.noops = "pacs-01", data, connector, []

    def noop(self, message):
        self.noops.append(message)


class Connector:
    def __init__(self, client):
        self.client = client


def _plan(host, **kwargs) -> list:
    outcomes.clear()
    with ctx_host.use(host):
        return list(container.orthanc._inner(container="pacs", users=USERS, **kwargs))


def test_the_engine_given_is_the_one_asked_whatever_the_host_data_says():
    given = EmptyEngine()
    # Host data naming another engine is not read: the operation's argument is its only input.
    host = Host({"orthanc_harden_docker_url": "tcp://elsewhere.example.org:2376"})
    commands = _plan(host, engine=given)
    assert given.asked == ["pacs", "pacs-orthanc-harden-old"]
    assert [c.args[:2] for c in commands] == [("container pacs", "container pacs: no such container on this engine")]


def test_an_engine_hosts_connector_client_is_the_default():
    opened = EmptyEngine()
    commands = _plan(Host({}, Connector(opened)))
    assert opened.asked == ["pacs", "pacs-orthanc-harden-old"]
    assert commands[0].args[1] == "container pacs: no such container on this engine"


def test_no_engine_fails_the_host_with_one_line_before_any_connection():
    commands = _plan(Host({"orthanc_harden_docker_url": "tcp://elsewhere.example.org:2376"}))
    assert [c.args[:2] for c in commands] == [(
        "container pacs", "container pacs: no Docker engine: pass engine= (a docker.DockerClient, e.g. from "
                          "orthanc_harden.docker.engine.connect) or run it on an @dockerengine host")]
    assert outcomes.for_host("pacs-01")["container pacs"]["status"] == "failed"


def test_the_address_of_an_engine_for_ports_published_on_every_address():
    """Read from the client itself; no connection is made (the API version is given, so nothing is asked)."""
    local = docker.DockerClient(base_url="unix:///var/run/docker.sock", version=engine.API_VERSION)
    remote = docker.DockerClient(base_url="tcp://pacs-07.example.org:2376", version=engine.API_VERSION)
    v6 = docker.DockerClient(base_url="tcp://[fd00::7]:2375", version=engine.API_VERSION)
    assert engine.address(local) == "127.0.0.1"
    assert engine.address(remote) == "pacs-07.example.org"
    assert engine.address(v6) == "fd00::7"
    over_ssh = docker.DockerClient(base_url="unix:///var/run/docker.sock", version=engine.API_VERSION)
    adapter = SSHHTTPAdapter.__new__(SSHHTTPAdapter)  # as engine.connect mounts it, without connecting
    adapter.ssh_host = "root@pacs-08.example.org:2222"
    over_ssh.api._custom_adapter, over_ssh.api.base_url = adapter, "http+docker://ssh"
    assert engine.address(over_ssh) == "pacs-08.example.org"
