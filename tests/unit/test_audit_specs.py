"""Fact specs in pyinfra's style: real captured probe output and `docker inspect` JSON in, descriptions out."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from orthanc_harden.audit import effective, instances
from orthanc_harden.docker import inspection
from orthanc_harden.facts.orthanc import NO_PYTHON, OrthancHostState

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _probe(name: str) -> dict:
    return json.loads((FIXTURES / "probe" / name).read_text())


class FakeContainer:
    """A docker SDK container made from real `docker inspect` output (no engine needed)."""

    def __init__(self, name: str):
        self.attrs = json.loads((FIXTURES / name).read_text())
        self.name = self.attrs["Name"].lstrip("/")
        self.status = self.attrs["State"]["Status"]


def test_fact_process_takes_the_json_line_and_reports_missing_python():
    fact = OrthancHostState()
    assert fact.process(["noise", '{"probe": 1, "units": []}']) == {"probe": 1, "units": []}
    command = fact.command()
    assert command.startswith("if command -v python3 >/dev/null 2>&1; then python3 -c '")
    assert shlex.quote(json.dumps(NO_PYTHON)) in command
    with pytest.raises(ValueError):
        fact.process(["no json here"])


def test_debian_package_host():
    (inst,) = instances.from_host_state("pacs-01", _probe("debian-package.json"))
    assert (inst["instance"], inst["origin"], inst["version"]) == ("orthanc.service", "unit", "1.10.1")
    assert inst["package_version"] == "1.10.1+dfsg-2+deb12u1"
    assert inst["config_path"] == "/etc/orthanc"
    config = inst["config"]
    assert config["effective"]["RemoteAccessAllowed"] is True
    assert config["effective"]["AuthenticationEnabled"] is False
    assert "AuthenticationEnabled" in config["explicit"]
    assert config["users"] == [] and config["duplicates"] == {} and config["parse_errors"] == {}
    assert config["user_files"] == [{"path": "/etc/orthanc/credentials.json", "owner": "root", "group": "orthanc",
                                     "mode": "0640"}]
    assert config["key_files"]["RegisteredUsers"] == ["/etc/orthanc/credentials.json"]
    assert config["service_group"] == "orthanc"
    assert inst["firewall"] == {"backend": "none", "active": False, "ports_open_to_all": [8042, 4242]}


def test_custom_unit_with_dropin_duplicate_and_broken_file():
    (inst,) = instances.from_host_state("pacs-02", _probe("custom-unit-dropin.json"))
    assert inst["config_path"] == "/srv/pacs/conf"
    config = inst["config"]
    assert list(config["parse_errors"]) == ["/srv/pacs/conf/broken.json"]
    assert config["parse_errors"]["/srv/pacs/conf/broken.json"].startswith("line 1:")
    assert config["duplicates"] == {"HttpPort": ["/srv/pacs/conf/dup.json", "/srv/pacs/conf/orthanc.json"]}
    assert config["users"] == ["orthanc", "radiology"]
    assert config["default_credentials"] == ["orthanc"]
    assert config["user_files"][0]["mode"] == "0644"
    assert "S3cret-canary-9f1c" not in json.dumps(inst)


@pytest.mark.parametrize("version, remote, expected", [
    ("1.5.7", True, False), ("1.5.8", True, True), ("1.10.1+dfsg-2+deb12u1", True, True),
    ("1.10.1", False, False), (None, True, False), ("mainline", True, False),
])
def test_authentication_default_depends_on_version(version, remote, expected):
    files = [{"path": "/etc/orthanc/orthanc.json", "keys": ["RemoteAccessAllowed"],
              "values": {"RemoteAccessAllowed": remote}}]
    assert effective.effective(files, version)["effective"]["AuthenticationEnabled"] is expected


def test_explicit_authentication_wins_over_the_default():
    files = [{"path": "a.json", "keys": ["RemoteAccessAllowed", "AuthenticationEnabled"],
              "values": {"RemoteAccessAllowed": True, "AuthenticationEnabled": False}}]
    assert effective.effective(files, "1.12.0")["effective"]["AuthenticationEnabled"] is False


def test_container_named_volume_and_bind_mounted_config():
    container = FakeContainer("inspect-named-volume.json")
    assert inspection.family(container) == "other"
    assert inspection.config_dir(container) == "/etc/orthanc/"
    assert inspection.storage(container, "/var/lib/orthanc/db") == {
        "type": "named-volume", "path": "/var/lib/orthanc/db", "name": "ohlab-default-docker-1-db"}


def test_container_orthancteam_env_and_anonymous_volume():
    container = FakeContainer("inspect-orthancteam-anonymous.json")
    assert inspection.family(container) == "orthancteam"
    store = inspection.storage(container, "/var/lib/orthanc/db")
    assert store["type"] == "anonymous-volume" and len(store["name"]) == 64
    files, secrets = inspection.env_config(container.attrs["Config"]["Env"])
    assert secrets == ["ORTHANC__REGISTERED_USERS_SECRET"]
    view = effective.effective(
        [{"path": "image-defaults", "keys": [], "values": inspection.FAMILY_DEFAULTS["orthancteam"]}] + files, None)
    assert view["effective"]["AuthenticationEnabled"] is False  # the env overrides the image default
    assert view["effective"]["RemoteAccessAllowed"] is True
    assert view["users"] == ["demo"] and view["default_credentials"] == ["demo"]
    assert "DicomAet" in view["key_files"] and view["key_files"]["DicomAet"] == ["env:ORTHANC_JSON"]


def test_container_writable_layer_storage():
    container = FakeContainer("inspect-writable-layer.json")
    assert inspection.family(container) == "other"
    assert inspection.storage(container, "/var/lib/orthanc/db") == {"type": "writable-layer",
                                                                    "path": "/var/lib/orthanc/db"}


def test_ufw_rules_decide_which_ports_are_open():
    rules = ["Status: active", "Default: deny (incoming), allow (outgoing), disabled (routed)",
             "8042/tcp                   ALLOW IN    Anywhere", "4242/tcp                   ALLOW IN    10.0.0.0/8"]
    view = instances.firewall_view({"backend": "ufw", "active": True, "rules": rules}, [8042, 4242])
    assert view["ports_open_to_all"] == [8042]


def test_containers_of_a_local_engine_are_probed_on_their_loopback_port():
    """ORTH-108 for a local engine's containers (#19): the control node reaches their published HTTP port."""
    from orthanc_harden.audit.instances import local_probe_url

    def container(url, bindings, ssl=False):
        return {"docker_url": url, "config": {"effective": {"HttpPort": 8042, "SslEnabled": ssl}},
                "published": [{"port": port, "host_ip": ip, "host_port": host_port}
                              for port, ip, host_port in bindings]}

    local = "unix:///var/run/docker.sock"
    assert local_probe_url(container(local, [(4242, "127.0.0.1", 33712), (8042, "127.0.0.1", 33711)])) == \
        "http://127.0.0.1:33711"
    assert local_probe_url(container(local, [(8042, "0.0.0.0", 8042)], ssl=True)) == "https://127.0.0.1:8042"
    assert local_probe_url(container(local, [(8042, "10.1.2.3", 8042)])) is None
    assert local_probe_url(container(local, [])) is None
    assert local_probe_url(container("ssh://root@pacs-07", [(8042, "127.0.0.1", 8042)])) is None
