"""Where the health gate after a container change finds Orthanc: its own HttpPort as the container publishes it."""

from __future__ import annotations

from orthanc_harden.docker.assess import ConfigFile, container_ports
from orthanc_harden.docker.replace import published_url


def _attrs(ports: dict) -> dict:
    return {"NetworkSettings": {"Ports": ports}}


def test_the_gate_url_is_orthancs_own_http_port_as_published_not_8042():
    attrs = _attrs({"8043/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2201"}],
                    "8042/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2209"}],  # another service of the image
                    "4242/tcp": None})
    assert published_url(attrs, "127.0.0.1", 8043) == "http://127.0.0.1:2201"
    assert published_url(attrs, "127.0.0.1", 4242) is None, "not published: no URL"
    assert published_url(_attrs({"8042/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2209"}]}),
                         "127.0.0.1") == "http://127.0.0.1:2209", "8042 by default"


def test_a_port_published_on_every_address_is_reached_at_the_engines_address():
    attrs = _attrs({"8043/tcp": [{"HostIp": "0.0.0.0", "HostPort": "2201"}, {"HostIp": "::", "HostPort": "2201"}]})
    assert published_url(attrs, "pacs-07.example.org", 8043) == "http://pacs-07.example.org:2201"
    assert published_url(attrs, "127.0.0.1", 8043) == "http://127.0.0.1:2201"
    assert published_url(attrs, None, 8043) is None, "no engine address: no URL, never http://None"
    v6 = _attrs({"8043/tcp": [{"HostIp": "fd00::7", "HostPort": "2201"}]})
    assert published_url(v6, "127.0.0.1", 8043) == "http://[fd00::7]:2201"


def test_the_http_port_comes_from_the_files_then_the_environment():
    files = [ConfigFile("/etc/orthanc/orthanc.json", '{ // site\n "HttpPort" : 8043 }', 0, 0, 0o640)]
    assert container_ports(files, {})["HttpPort"] == 8043
    assert container_ports(files, {"ORTHANC__HTTP_PORT": "9042"})["HttpPort"] == 9042
    assert container_ports([], {}) == {"HttpPort": 8042, "DicomPort": 4242}
