"""Verify an Orthanc container after the harden deploy: testinfra through `docker exec`, plus HTTP and the engine's
own view (`docker inspect`) from the control node."""

import json
import re
import subprocess

from http_checks import (  # noqa: F401 - collected here
    test_anonymous_request_is_refused, test_store_user_is_accepted_and_a_wrong_password_refused)

CONFIG = "/etc/orthanc/orthanc.json"  # the lab mounts its configuration directory on /etc/orthanc
STORAGE = "/var/lib/orthanc/db"  # a named volume


def _inspect(lab_vars) -> dict:
    out = subprocess.run(["docker", "inspect", lab_vars["lab_container"]], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return json.loads(out)[0]


def test_orthanc_is_the_running_main_process(host, lab_vars):
    assert _inspect(lab_vars)["State"]["Running"]
    assert host.file("/proc/1/comm").content_string.strip() == "Orthanc"


def test_configuration_sets_authentication_and_is_closed_to_others(host, store_user):
    f = host.file(CONFIG)
    assert re.search(r'(?m)^  "AuthenticationEnabled"\s*:\s*true\b', f.content_string)
    assert f'"{store_user[0]}"' in f.content_string
    # Orthanc runs as root in this image: the users file is root's and no one else's.
    assert f.user == "root" and f.mode & 0o007 == 0, oct(f.mode)
    # The pre-tool original is kept owner-only; no rolling backup holds older passwords.
    originals = host.run("ls /etc/orthanc/*.orthanc-harden-original").stdout.split()
    assert originals, "the file as it was before orthanc-harden is kept"
    for path in originals:
        assert host.file(path).mode == 0o600, path
    assert host.run("ls /etc/orthanc/*.orthanc-harden-backup").stdout.split() == []


def test_ports_are_published_on_loopback_only(lab_vars):
    # The host firewall control does not apply to containers (Docker's chains come before INPUT); what keeps them
    # off the network here is publishing on 127.0.0.1 only.
    ports = _inspect(lab_vars)["NetworkSettings"]["Ports"]
    bindings = [b for port in ("8042/tcp", "4242/tcp") for b in ports.get(port) or []]
    assert bindings and {b["HostIp"] for b in bindings} == {"127.0.0.1"}, ports


def test_seeded_dicom_data_is_still_on_its_volume(host, orthanc, store_user, lab_vars):
    for instance in lab_vars["seeded_instances"]:
        response = orthanc.get(f"/instances/{instance}/file", auth=store_user)
        assert response.status_code == 200 and response.content[128:132] == b"DICM", instance
    mounts = {m["Destination"]: m for m in _inspect(lab_vars)["Mounts"]}
    assert mounts[STORAGE]["Type"] == "volume" and mounts[STORAGE]["Name"] == f"{lab_vars['lab_container']}-db"
    assert int(host.run(f"find {STORAGE} -type f | wc -l").stdout) >= len(lab_vars["seeded_instances"])


def test_no_password_in_converge_output_or_container_environment(converge_output, store_user, lab_vars):
    assert store_user[1] not in converge_output
    assert store_user[1] not in json.dumps(_inspect(lab_vars)["Config"]["Env"])
