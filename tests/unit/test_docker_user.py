"""The DOCKER-USER part: which published ports count, the rules as iptables-save prints them, the audit's view.
The real engine, chains and outside clients: tests/integration/test_docker_user.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orthanc_harden.audit import instances
from orthanc_harden.runs import audit
from orthanc_harden.remote import load


@pytest.fixture(scope="module")
def fw():
    return load("firewall")


def _attrs(name, image, ports=None, configured=None, env=None, entrypoint=None, path="/usr/sbin/Orthanc"):
    return {"Id": name * 8, "Name": "/" + name, "Path": path,
            "Config": {"Image": image, "Env": env or [], "Entrypoint": entrypoint, "Cmd": ["/etc/orthanc/"]},
            "NetworkSettings": {"Ports": ports or {}}, "HostConfig": {"PortBindings": configured or {}}}


def test_only_orthanc_ports_published_beyond_loopback_count(fw, monkeypatch):
    monkeypatch.setitem(fw, "_run_bytes", lambda argv, timeout=30: (1, b""))  # no `docker cp`: defaults apply
    engine = {"containers": [
        _attrs("pacs", "jodogne/orthanc:1.5.7", ports={
            "8042/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18042"}, {"HostIp": "::", "HostPort": "18042"}],
            "4242/tcp": [{"HostIp": "127.0.0.1", "HostPort": "14242"}],
            "9000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "19000"}]}),
        _attrs("env-port", "orthancteam/orthanc:24.1.2", env=["ORTHANC__HTTP_PORT=8080"],
               ports={"8080/tcp": [{"HostIp": "10.0.0.5", "HostPort": "28080"}],
                      "8042/tcp": [{"HostIp": "0.0.0.0", "HostPort": "28042"}]}),
        _attrs("stopped", "osimis/orthanc:22.1.0", configured={
            "8042/tcp": [{"HostIp": "", "HostPort": "38042"}], "4242/tcp": [{"HostIp": "", "HostPort": ""}]}),
        _attrs("web", "nginx:1.25", path="/docker-entrypoint.sh",
               ports={"8042/tcp": [{"HostIp": "0.0.0.0", "HostPort": "48042"}]}),
    ]}
    found = {(b["container"], b["port"], b["host_ip"], b["host_port"]) for b in fw["published_orthanc_ports"](engine)}
    assert found == {("pacs", 8042, "0.0.0.0", 18042), ("pacs", 8042, "::", 18042),
                     ("env-port", 8080, "10.0.0.5", 28080), ("stopped", 8042, "0.0.0.0", 38042)}


def test_rules_match_dnated_connections_to_each_port_in_save_format(fw):
    rules = fw["docker_rules"]([14242, 18042], ["10.20.0.0/16", "192.0.2.7/32"])
    assert rules[0] == ("-A ORTHANC-HARDEN-DOCKER -s 10.20.0.0/16 -p tcp -m conntrack --ctstate DNAT "
                        "--ctorigdstport 14242 --ctdir ORIGINAL -m comment --comment orthanc-harden -j RETURN")
    assert [r.split()[-1] for r in rules] == ["RETURN"] * 4 + ["DROP"] * 2
    assert all("--ctstate DNAT" in r for r in rules)
    assert rules[-1].endswith("--ctorigdstport 18042 --ctdir ORIGINAL -m comment --comment orthanc-harden -j DROP")


def test_script_loads_the_chain_then_puts_its_jump_first(fw):
    script = fw["docker_script"]({"iptables": fw["docker_rules"]([18042], ["10.0.0.0/8"])})
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh" and "set -e" in lines
    assert lines.index(":ORTHANC-HARDEN-DOCKER - [0:0]") < lines.index(
        "iptables -I DOCKER-USER 1 -m comment --comment orthanc-harden -j ORTHANC-HARDEN-DOCKER")
    assert "ip6tables" not in script


def _container_row(published):
    return {"host": "@dockerengine/d1", "instance": "pacs", "kind": "container", "status": "findings",
            "engine_id": "ENGINE-1", "published": published, "version": "1.12.1", "config": {
                "effective": {"RemoteAccessAllowed": True, "AuthenticationEnabled": True, "HttpPort": 8042,
                              "DicomPort": 4242}, "parse_errors": {}, "files": []},
            "firewall": {"backend": "docker-publish", "active": True,
                         "ports_open_to_all": sorted({p["port"] for p in published})}}


def test_audit_drops_orth005_for_ports_the_engine_hosts_chain_closes():
    published = [{"port": 8042, "host_ip": "0.0.0.0", "host_port": 18042},
                 {"port": 4242, "host_ip": "0.0.0.0", "host_port": 14242}]
    row = _container_row(published)
    assert instances.docker_user_closed(row, {18042})
    assert row["firewall"] == {"backend": "docker-user", "active": True, "ports_open_to_all": [4242]}
    assert instances.docker_user_closed(row, {18042, 14242}) and row["firewall"]["ports_open_to_all"] == []
    assert not instances.docker_user_closed(row, {18042, 14242})


def test_no_chain_changes_nothing():
    row = _container_row([{"port": 8042, "host_ip": "0.0.0.0", "host_port": 18042}])
    assert not instances.docker_user_closed(row, set())
    assert row["firewall"] == {"backend": "docker-publish", "active": True, "ports_open_to_all": [8042]}


def test_ssh_hosts_are_audited_before_docker_engines_and_rows_keep_the_hosts_order():
    hosts = [SimpleNamespace(name=n, data={"orthanc_harden_docker_url": "unix://x"} if n.startswith("@") else {})
             for n in ("@dockerengine/a", "pkg-1", "@dockerengine/b", "pkg-2")]
    seen = []
    result = audit.in_waves(hosts, lambda h: seen.append(h.name) or h.name.upper(), parallel=4)
    assert seen[:2] == ["pkg-1", "pkg-2"] and set(seen[2:]) == {"@dockerengine/a", "@dockerengine/b"}
    assert result == ["@DOCKERENGINE/A", "PKG-1", "@DOCKERENGINE/B", "PKG-2"]


def test_engine_without_iptables_is_reported_and_nothing_is_written(fw, monkeypatch):
    monkeypatch.setitem(fw, "docker_engine", lambda: {"id": "E", "containers": []})
    monkeypatch.setitem(fw, "published_orthanc_ports", lambda engine: [
        {"container": "pacs", "port": 8042, "host_ip": "0.0.0.0", "host_port": 18042}])
    monkeypatch.setitem(fw, "docker_user_live", lambda: {})  # --iptables=false: no DOCKER-USER chain
    monkeypatch.setitem(fw, "_read", lambda path: None)
    monkeypatch.setitem(fw, "_systemd", lambda: True)
    step = fw["docker_plan"](["10.0.0.0/8"], [])
    assert step["changed"] is False and step["script"] is None
    assert "--iptables=false" in step["notes"][0] and "18042" in step["notes"][0]


def test_a_container_configuration_directory_is_not_read_past_the_limit(fw):
    assert fw["_run_bytes"](["sh", "-c", "head -c 5000 /dev/zero"], limit=1000) == (1, b"")
    assert fw["_run_bytes"](["sh", "-c", "printf abc"], limit=1000) == (0, b"abc")
