"""An Orthanc container whose HttpPort is not 8042 is hardened and gated on its own port (#22).

Without a probe URL the health gate after a container change looks for Orthanc's HTTP port where the container
publishes it. It looked for 8042 whatever Orthanc's HttpPort was, found nothing, and failed the change (rolled
back) on every container serving another port: in place (files edited, restarted) and recreated alike.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from orthanc_harden.lab import app_images, engine
from tests.conftest import unavailable
from tests.integration.dockerlab import ENGINES_INVENTORY, clean, rows as host_rows, run_engines, wait_http

pytestmark = pytest.mark.lab

LABEL = "orthanc-harden.test"
KIND = "h22b-http-port"
NETWORK = "h22b-http-port"
HTTP_PORT = 8043  # Orthanc's HttpPort inside both containers
PORTS = {"h22b-inplace": 2201, "h22b-rebind": 2203}  # where each publishes it (rebind: on the network's gateway)
CANARY = "Canary-http-port-5e0a-\"x'"
CONFIG = """{
  // test container: the CVE-2025-0896 state, on a port of its own
  "Name" : "%s",
  "RemoteAccessAllowed" : true,
  "AuthenticationEnabled" : false,
  "HttpPort" : %d,
  "StorageDirectory" : "/var/lib/orthanc/db",
  "IndexDirectory" : "/var/lib/orthanc/db"
}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("http-port")
    try:
        client = engine.ensure_engine(lambda _m: None)
        clean(client, LABEL, KIND)
        image = app_images.build_all(client, lambda _m: None)["jodogne-fixed"]
    except Exception as err:  # noqa: BLE001 - any lab failure must fail the module loudly, with its cause
        unavailable(f"Docker engine or test images: {err}")
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    (work / "engines.py").write_text(ENGINES_INVENTORY)
    network = client.networks.create(NETWORK, labels={LABEL: KIND})
    try:
        network.reload()
        gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
        yield {"client": client, "image": image, "work": work, "users": users, "gateway": gateway}
    finally:
        clean(client, LABEL, KIND)


def _orthanc(lab, name: str, address: str):
    directory = lab["work"] / name
    directory.mkdir()
    (directory / "orthanc.json").write_text(CONFIG % (name, HTTP_PORT))
    (directory / "orthanc.json").chmod(0o640)
    lab["client"].volumes.create(f"{name}-db", labels={LABEL: KIND})
    return lab["client"].containers.run(
        lab["image"], name=name, detach=True, network=NETWORK, labels={LABEL: KIND, f"{LABEL}-role": "http-port"},
        ports={f"{HTTP_PORT}/tcp": (address, PORTS[name])},
        volumes={str(directory): {"bind": "/etc/orthanc", "mode": "rw"},
                 f"{name}-db": {"bind": "/var/lib/orthanc/db", "mode": "rw"}})


def _answers_on_its_network(container, timeout: float = 90) -> bool:
    """Orthanc answers on the container's address in the test's own network (its port is not on 127.0.0.1)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
        try:
            if requests.get(f"http://{address}:{HTTP_PORT}/system", timeout=5).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(1)
    return False


def _remediate(lab) -> tuple[int, str, dict]:
    # No orthanc_harden_probe_urls: the gate must find the port the container publishes Orthanc's HttpPort on.
    engines = {"h22b-http-port": {
        "orthanc_harden_docker_url": "unix:///var/run/docker.sock",
        "orthanc_harden_docker_filters": {"label": f"{LABEL}-role=http-port"},
        "orthanc_harden_users_ref": f"file:{lab['users']}",
        "orthanc_harden_docker_publish_address": "127.0.0.1",
    }}
    code, output, report = run_engines("remediate", lab["work"] / "engines.py", lab["work"] / "report.json",
                                       engines, CANARY)
    return code, output, host_rows(report)["@dockerengine/h22b-http-port"]


def test_containers_on_another_http_port_are_gated_there_in_place_and_recreated(lab):
    client = lab["client"]
    in_place = _orthanc(lab, "h22b-inplace", "127.0.0.1")
    rebind = _orthanc(lab, "h22b-rebind", lab["gateway"])
    assert wait_http(PORTS["h22b-inplace"], want=200) == 200, "open before the run"
    assert _answers_on_its_network(rebind), "open before the run"

    code, output, row = _remediate(lab)
    assert code == 0 and row["status"] == "changed", output[-3000:]
    changes = " ".join(row["changes"])
    assert "h22b-inplace" in changes and "h22b-rebind" in changes, row
    assert f"published on 127.0.0.1 only: {HTTP_PORT}/tcp from {lab['gateway']}:{PORTS['h22b-rebind']}" in changes
    assert client.api.inspect_container("h22b-inplace")["Id"] == in_place.id, "in place: not recreated"
    assert client.api.inspect_container("h22b-rebind")["Id"] != rebind.id, "recreated to move its port"
    for name, port in PORTS.items():
        assert wait_http(port, want=401) == 401, f"{name}: authentication on, on its own port"
        assert wait_http(port, auth=("radiology", CANARY.encode()), want=200) == 200, name
        attrs = client.api.inspect_container(name)
        assert CANARY not in json.dumps(attrs) and CANARY.encode() not in client.containers.get(name).logs()
    assert not client.containers.list(all=True, filters={"name": "orthanc-harden-old"}), "old container removed"

    started = {name: client.api.inspect_container(name)["State"]["StartedAt"] for name in PORTS}
    code, output, row = _remediate(lab)
    assert code == 0 and row["status"] == "compliant" and row["changes"] == [], output[-3000:]
    assert {name: client.api.inspect_container(name)["State"]["StartedAt"] for name in PORTS} == started, \
        "nothing restarted the second time"
