"""The ``@dockerengine`` connector declares the host data it reads (``data_meta``), as pyinfra's connectors do, and
connects from that data. Nothing here contacts an engine: the refusals come before any connection."""

from __future__ import annotations

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.exceptions import ConnectError

from orthanc_harden import settings
from orthanc_harden.docker import engine
from orthanc_harden.docker.connector import DockerEngineConnector

SSH_KEYS = {"ssh_hostname", "ssh_port", "ssh_user", "ssh_key", "ssh_known_hosts_file",
            "ssh_strict_host_key_checking", "ssh_allow_agent", "ssh_look_for_keys"}


def _engine_host(data: dict):
    inventory = Inventory((["@dockerengine/pacs-07"], data))
    State(inventory, Config())  # makes each host's connector from its data, as a run does
    return inventory.get_host("@dockerengine/pacs-07")


def test_every_key_it_reads_is_declared_with_the_settings_default():
    meta = DockerEngineConnector.data_meta
    assert set(meta) == {"orthanc_harden_docker_url", "orthanc_harden_docker_tls",
                         "orthanc_harden_docker_insecure"} | SSH_KEYS
    for key in ("orthanc_harden_docker_url", "orthanc_harden_docker_tls", "orthanc_harden_docker_insecure"):
        assert (meta[key].default, meta[key].description) == (settings.SETTINGS[key].default,
                                                               settings.SETTINGS[key].description)
    assert meta["ssh_strict_host_key_checking"].default == "yes", "an unknown host key is refused by default"
    assert all(meta[key].description for key in meta)


def test_the_connector_data_holds_the_host_data_and_the_defaults():
    host = _engine_host({"orthanc_harden_docker_url": "ssh://root@pacs-07.example.org", "ssh_port": 2222})
    assert isinstance(host.connector, DockerEngineConnector)
    assert host.connector.data == {
        "orthanc_harden_docker_url": "ssh://root@pacs-07.example.org", "orthanc_harden_docker_tls": None,
        "orthanc_harden_docker_insecure": False, "ssh_hostname": None, "ssh_port": 2222, "ssh_user": None,
        "ssh_key": None, "ssh_known_hosts_file": None, "ssh_strict_host_key_checking": "yes",
        "ssh_allow_agent": True, "ssh_look_for_keys": True}


def test_a_wrong_value_does_not_stop_the_inventory_it_fails_that_host_alone():
    host = _engine_host({"orthanc_harden_docker_url": "tcp://pacs-07.example.org:2376",
                         "orthanc_harden_docker_tls": "yes"})
    assert host.connector.data["orthanc_harden_docker_tls"] == "yes"
    assert "orthanc_harden_docker_tls must be a dict" in " ".join(settings.validate(host.data))


@pytest.mark.parametrize("data, message", [
    ({}, "orthanc_harden_docker_url is not set for this engine"),
    ({"orthanc_harden_docker_url": "tcp://pacs-07.example.org:2375"},
     "orthanc_harden_docker_url tcp://pacs-07.example.org:2375 is plain TCP without TLS"),
])
def test_connecting_reads_the_declared_data_and_refuses_before_any_connection(data, message):
    host = _engine_host(data)
    with pytest.raises(ConnectError, match=message):
        host.connector.connect()
    assert not hasattr(host.connector, "client")


def test_the_ssh_transport_gets_the_declared_defaults():
    assert engine._ssh_settings({"ssh_user": "root", "ssh_allow_agent": None}) == {
        "hostname": None, "port": None, "user": "root", "key": None, "known_hosts": None, "strict": "yes",
        "allow_agent": True, "look_for_keys": True}
