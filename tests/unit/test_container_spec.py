"""The recreate body from `docker inspect` data: image defaults subtracted, user settings and volumes kept."""

from __future__ import annotations

from orthanc_harden.docker import spec

IMAGE = {"Config": {
    "Env": ["PATH=/usr/bin", "ORTHANC__NAME=image-default"], "Labels": {"vendor": "orthanc"},
    "Volumes": {"/var/lib/orthanc/db": {}}, "ExposedPorts": {"8042/tcp": {}, "4242/tcp": {}},
    "Entrypoint": ["/docker-entrypoint.sh"], "Cmd": None, "WorkingDir": "/", "User": "",
}}


def _container(**config) -> dict:
    base = {
        "Id": "0123456789abcdef" * 4,
        "Config": {"Hostname": "0123456789ab", "Env": ["PATH=/usr/bin", "ORTHANC__NAME=image-default", "SITE=east"],
                   "Labels": {"vendor": "orthanc", "pacs": "east"}, "Volumes": {"/var/lib/orthanc/db": {}},
                   "ExposedPorts": {"8042/tcp": {}, "4242/tcp": {}}, "Entrypoint": ["/docker-entrypoint.sh"],
                   "Cmd": None, "WorkingDir": "/", "User": "", "Image": "orthancteam/orthanc:19.11.0", **config},
        "HostConfig": {"Binds": ["/srv/orthanc/etc:/etc/orthanc:ro"], "PortBindings": {
            "8042/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8042"}]}, "NetworkMode": "pacs",
            "RestartPolicy": {"Name": "unless-stopped"}, "Memory": 536870912},
        "Mounts": [
            {"Type": "bind", "Source": "/srv/orthanc/etc", "Destination": "/etc/orthanc", "RW": False},
            {"Type": "volume", "Name": "4f1e" * 16, "Destination": "/var/lib/orthanc/db", "RW": True},
        ],
        "NetworkSettings": {"Networks": {
            "pacs": {"Aliases": ["0123456789ab", "orthanc"], "IPAMConfig": {"IPv4Address": "172.30.0.10"}},
            "backup": {"Aliases": ["orthanc-backup"], "IPAMConfig": None},
        }},
    }
    return base


def test_image_defaults_are_subtracted_and_user_settings_kept():
    config = spec.user_config(_container(), IMAGE)
    assert config["Env"] == ["SITE=east"]
    assert config["Labels"] == {"pacs": "east"}
    assert config["Volumes"] is None
    assert config["ExposedPorts"] == {"8042/tcp": {}}, "published ports stay exposed"
    for key in ("Entrypoint", "Cmd", "WorkingDir", "User", "Hostname"):
        assert key not in config, f"{key} equal to the image's or the engine's default is not carried"


def test_user_entrypoint_and_hostname_are_carried():
    config = spec.user_config(_container(Entrypoint=["/bin/Orthanc"], Hostname="pacs-east"), IMAGE)
    assert config["Entrypoint"] == ["/bin/Orthanc"] and config["Hostname"] == "pacs-east"


def test_anonymous_volumes_are_bound_by_name_and_named_binds_kept():
    body = spec.create_body(_container(), IMAGE, "orthancteam/orthanc:24.1.2",
                                      {"ORTHANC__AUTHENTICATION_ENABLED": "true", "SITE": None})
    assert body["Image"] == "orthancteam/orthanc:24.1.2"
    assert body["HostConfig"]["Binds"] == ["/srv/orthanc/etc:/etc/orthanc:ro", f"{'4f1e' * 16}:/var/lib/orthanc/db"]
    assert body["HostConfig"]["Memory"] == 536870912 and body["HostConfig"]["RestartPolicy"]["Name"] == \
        "unless-stopped"
    assert body["Env"] == ["ORTHANC__AUTHENTICATION_ENABLED=true"], "SITE removed on request, auth added"


def test_networks_keep_aliases_and_static_addresses_without_the_engine_alias():
    primary, extra = spec.networks(_container())
    assert primary == {"pacs": {"Aliases": ["orthanc"], "Links": None,
                                "IPAMConfig": {"IPv4Address": "172.30.0.10"}}}
    assert extra == {"backup": {"Aliases": ["orthanc-backup"], "Links": None}}
    host_mode = _container()
    host_mode["HostConfig"]["NetworkMode"] = "host"
    assert spec.networks(host_mode) == ({}, {})


def test_preserved_view_ignores_the_image_and_anonymous_bind_form():
    before = _container()
    after = _container(Image="orthancteam/orthanc:24.1.2")
    after["Id"] = "fedcba9876543210" * 4
    after["Config"]["Hostname"] = "fedcba987654"
    after["HostConfig"]["Binds"].append(f"{'4f1e' * 16}:/var/lib/orthanc/db")
    after["NetworkSettings"]["Networks"]["pacs"]["Aliases"] = ["fedcba987654", "orthanc"]
    assert spec.preserved_view(after, IMAGE) == spec.preserved_view(before, IMAGE)
    after["HostConfig"]["RestartPolicy"] = {"Name": "no"}
    assert spec.preserved_view(after, IMAGE) != spec.preserved_view(before, IMAGE)


def test_orthanc_ports_come_from_the_files_then_the_environment():
    from orthanc_harden.docker.assess import ConfigFile, orthanc_ports

    text = "{ // comment\n \"HttpPort\": 8080, \"DicomPort\": 104 }"
    files = [ConfigFile("/etc/orthanc/orthanc.json", text, 0, 0, 0o640),
             ConfigFile("/etc/orthanc/broken.json", "{ nope", 0, 0, 0o640)]
    assert orthanc_ports(files, {}) == {"8080/tcp", "104/tcp"}
    assert orthanc_ports(files, {"ORTHANC__HTTP_PORT": "9042"}) == {"9042/tcp", "104/tcp"}
    assert orthanc_ports([], {}) == {"8042/tcp", "4242/tcp"}


def test_rebound_moves_only_orthancs_ports_and_keeps_host_ports():
    from orthanc_harden.docker.assess import rebound

    attrs = {"HostConfig": {"PortBindings": {
        "8042/tcp": [{"HostIp": "", "HostPort": "8042"}, {"HostIp": "::", "HostPort": "8042"}],
        "4242/tcp": [{"HostIp": "127.0.0.1", "HostPort": "4242"}],
        "9000/tcp": [{"HostIp": "", "HostPort": "9000"}]}}}
    wanted, moved = rebound(attrs, {"8042/tcp", "4242/tcp"}, "127.0.0.1")
    assert wanted == {"8042/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8042"}],
                      "4242/tcp": [{"HostIp": "127.0.0.1", "HostPort": "4242"}],
                      "9000/tcp": [{"HostIp": "", "HostPort": "9000"}]}
    assert moved == ["8042/tcp from every address:8042", "8042/tcp from [::]:8042"]
    assert rebound({"HostConfig": {"PortBindings": wanted}}, {"8042/tcp", "4242/tcp"}, "127.0.0.1") == (None, [])
    assert rebound({"HostConfig": {"PortBindings": None}}, {"8042/tcp"}, "127.0.0.1") == (None, [])


def test_create_body_takes_new_port_bindings_and_keeps_the_rest():
    new = {"8042/tcp": [{"HostIp": "10.1.2.3", "HostPort": "8042"}]}
    body = spec.create_body(_container(), IMAGE, "orthancteam/orthanc:24.1.2", port_bindings=new)
    assert body["HostConfig"]["PortBindings"] == new
    assert body["HostConfig"]["Memory"] == 536870912
    assert spec.create_body(_container(), IMAGE, "x")["HostConfig"]["PortBindings"] == \
        _container()["HostConfig"]["PortBindings"]
