"""Verify a package host after the harden deploy: testinfra over SSH, plus HTTP from the control node."""

import re

from http_checks import (  # noqa: F401 - collected here
    test_anonymous_request_is_refused, test_store_user_is_accepted_and_a_wrong_password_refused)

CONFIG_DIR = "/etc/orthanc"
STORAGE = "/var/lib/orthanc/db-v6"  # Debian's StorageDirectory
PORTS = (8042, 4242)  # as the host sees them (Debian's HttpPort and DicomPort)


def test_orthanc_runs_as_its_service_user(host):
    service = host.service("orthanc")
    assert service.is_running and service.is_enabled
    assert {p.user for p in host.process.filter(comm="Orthanc")} == {"orthanc"}


def test_configuration_sets_authentication_explicitly(host):
    config = host.file(f"{CONFIG_DIR}/orthanc.json").content_string
    assert re.search(r'(?m)^  "AuthenticationEnabled"\s*:\s*true\b', config)


def test_users_file_is_closed_to_others(host, store_user):
    # The file that holds RegisteredUsers (Debian: credentials.json): root's, readable by the service, no one else.
    holders = host.run(f"grep -l '\"{store_user[0]}\"' {CONFIG_DIR}/*.json").stdout.split()
    assert holders, "no configuration file registers the store's user"
    for path in holders:
        f = host.file(path)
        assert (f.user, f.group) == ("root", "orthanc") and f.mode & 0o007 == 0, (path, oct(f.mode))
    # The pre-tool original is kept owner-only; the rollback copy is gone once Orthanc is healthy.
    originals = host.run(f"ls {CONFIG_DIR}/*.orthanc-harden-original").stdout.split()
    assert originals, "the file as it was before orthanc-harden is kept"
    for path in originals:
        assert host.file(path).mode == 0o600, path
    assert host.run(f"ls {CONFIG_DIR}/*.orthanc-harden-backup").stdout.split() == []


def test_orthanc_ports_are_filtered(host, lab_vars):
    # The firewall control is on in the lab's data: ufw active, each Orthanc port accepted from the lab's network
    # only, then dropped for every other source (IPv4 and IPv6), read from the kernel's ruleset.
    assert "Status: active" in host.run("ufw status").stdout
    rules = host.run("iptables -S ufw-user-input").stdout.splitlines()
    rules6 = host.run("ip6tables -S ufw6-user-input").stdout.splitlines()
    for port in PORTS:
        allow = [i for i, r in enumerate(rules) if f"-s {lab_vars['lab_subnet']}" in r and f"--dport {port} " in r
                 and r.endswith("-j ACCEPT")]
        block = [i for i, r in enumerate(rules) if "-s " not in r and f"--dport {port} " in r
                 and r.endswith(("-j DROP", "-j REJECT"))]
        assert allow and block and allow[0] < block[0], (port, rules)
        assert any(f"--dport {port} " in r and r.endswith(("-j DROP", "-j REJECT")) for r in rules6), (port, rules6)


def test_seeded_dicom_data_is_still_there(host, orthanc, store_user, lab_vars):
    for instance in lab_vars["seeded_instances"]:
        response = orthanc.get(f"/instances/{instance}/file", auth=store_user)
        assert response.status_code == 200 and response.content[128:132] == b"DICM", instance
    stored = int(host.run(f"find {STORAGE} -type f | wc -l").stdout)
    assert stored >= len(lab_vars["seeded_instances"])


def test_converge_never_printed_the_password(converge_output, store_user):
    assert store_user[1] not in converge_output
