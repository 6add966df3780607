"""The lab's local registry and stand-in Orthanc images, for real: pushed images pull back unchanged by reference,
the "old" stand-ins report 1.5.7, and the orthancteam stand-in takes its settings from ORTHANC__* variables over
mounted /etc/orthanc JSON, as the real image does.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from orthanc_harden.lab import app_images, engine, registry
from orthanc_harden.lab.errors import LabError
from tests.conftest import unavailable

pytestmark = pytest.mark.lab

LABEL = "orthanc-harden.test"
KIND = "registry"
REGISTRY_PORT = 31500
HTTP_PORTS = {"auth-off": 31510, "auth-on": 31511}


def _clean(client) -> None:
    for item in client.containers.list(all=True, filters={"label": f"{LABEL}={KIND}"}):
        item.remove(force=True, v=True)


def _wait_http(port: int, auth=None, timeout: float = 60) -> requests.Response:
    """GET /system until Orthanc answers at all (any status), bounded in time and tries."""
    deadline, tries, last = time.monotonic() + timeout, 0, None
    while time.monotonic() < deadline and tries < 300:
        tries += 1
        try:
            return requests.get(f"http://127.0.0.1:{port}/system", auth=auth, timeout=3)
        except requests.RequestException as err:
            last = err
        time.sleep(0.5)
    raise AssertionError(f"nothing answered on 127.0.0.1:{port} within {timeout:.0f}s: {last}")


def _version(client, ref: str) -> str:
    out = client.containers.run(ref, entrypoint=["/usr/sbin/Orthanc"], command=["--version"], remove=True,
                                labels={LABEL: KIND})
    return out.decode().splitlines()[0].split()[-1]


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    work = tmp_path_factory.mktemp("registry")
    directory = work / "registry"
    messages: list[str] = []
    try:
        client = engine.ensure_engine(messages.append)
        registry.ensure_installed(messages.append)
    except LabError as err:
        unavailable(f"Docker engine or docker-registry: {err}")
    _clean(client)
    try:
        address = registry.start(directory, REGISTRY_PORT, messages.append)
        local = app_images.build_all(client, messages.append)
        refs = app_images.push_all(client, address, messages.append)
    except LabError as err:
        registry.stop(directory)
        # Our own code failed here, not a missing component: never a skip.
        pytest.fail(f"local registry or stand-in images: {err} (steps: {messages[-3:]})", pytrace=False)
    try:
        yield {"client": client, "address": address, "local": local, "refs": refs, "dir": directory, "work": work}
    finally:
        _clean(client)
        registry.stop(directory)


def test_registry_is_reused_and_holds_both_repositories(pushed):
    pid = (pushed["dir"] / "registry.pid").read_text()
    assert registry.start(pushed["dir"], REGISTRY_PORT, lambda _m: None) == pushed["address"]
    assert (pushed["dir"] / "registry.pid").read_text() == pid, "a running registry was started again"
    catalog = requests.get(f"http://{pushed['address']}/v2/_catalog", timeout=5).json()["repositories"]
    assert set(catalog) >= {"jodogne/orthanc", "orthancteam/orthanc"}
    assert set(pushed["refs"]) == {"jodogne-old", "jodogne-fixed", "team-old", "team-fixed", "team-broken"}
    assert pushed["refs"]["team-old"] == f"{pushed['address']}/orthancteam/orthanc:19.11.0"
    assert pushed["refs"]["jodogne-old"] == f"{pushed['address']}/jodogne/orthanc:1.5.7"


def test_removed_image_pulls_back_identical_by_reference(pushed):
    client, ref = pushed["client"], pushed["refs"]["team-fixed"]
    pushed_id = client.images.get(ref).id
    client.images.remove(ref)
    assert ref not in {tag for item in client.images.list() for tag in item.tags}
    repository, tag = ref.rsplit(":", 1)
    pulled = client.images.pull(repository, tag=tag)
    assert pulled.id == pushed_id
    head = requests.head(f"http://{pushed['address']}/v2/orthancteam/orthanc/manifests/{tag}", timeout=5,
                         headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert f"{repository}@{head.headers['Docker-Content-Digest']}" in client.images.get(ref).attrs["RepoDigests"]


def test_versions_old_fixed_and_broken(pushed):
    refs, client = pushed["refs"], pushed["client"]
    assert _version(client, refs["team-old"]) == "1.5.7"
    assert _version(client, refs["team-fixed"]) == "1.10.1"
    assert _version(client, refs["jodogne-old"]) == "1.5.7"
    assert _version(client, refs["team-broken"]) == "1.10.1"


def test_team_image_shape(pushed):
    config = pushed["client"].images.get(pushed["refs"]["team-fixed"]).attrs["Config"]
    assert config["Entrypoint"] == ["python3", "/docker-entrypoint.py"]
    assert not config["Cmd"], "the jodogne-style CMD leaked into the orthancteam stand-in"
    assert "ORTHANC__NAME=orthancteam-standin" in config["Env"]
    assert set(config["ExposedPorts"]) == {"8042/tcp", "4242/tcp"}
    assert "/var/lib/orthanc/db" in config["Volumes"]


def test_broken_image_never_starts(pushed):
    client = pushed["client"]
    box = client.containers.run(pushed["refs"]["team-broken"], detach=True, labels={LABEL: KIND})
    try:
        status = box.wait(timeout=60)
        assert status["StatusCode"] == 1
        assert "orthanc-harden-lab: broken on purpose" in box.logs().decode()
    finally:
        box.remove(force=True, v=True)


def test_environment_turns_authentication_off(pushed):
    client = pushed["client"]
    box = client.containers.run(pushed["refs"]["team-fixed"], detach=True, labels={LABEL: KIND},
                                environment={"ORTHANC__AUTHENTICATION_ENABLED": "false"},
                                ports={"8042/tcp": ("127.0.0.1", HTTP_PORTS["auth-off"])})
    try:
        answer = _wait_http(HTTP_PORTS["auth-off"])
        assert answer.status_code == 200, answer.text[:200]
        assert answer.json()["Name"] == "orthancteam-standin"  # the image's ENV default applies
    finally:
        box.remove(force=True, v=True)


def test_mounted_users_with_authentication_on(pushed, tmp_path):
    client = pushed["client"]
    config_dir = tmp_path / "etc-orthanc"
    config_dir.mkdir()
    # A comment as Orthanc allows, to exercise the entrypoint's comment stripping.
    (config_dir / "users.json").write_text('{\n  // lab\n  "RegisteredUsers": ' + json.dumps({"u": "p"}) + "\n}\n")
    box = client.containers.run(pushed["refs"]["team-fixed"], detach=True, labels={LABEL: KIND},
                                environment={"ORTHANC__AUTHENTICATION_ENABLED": "true"},
                                volumes={str(config_dir): {"bind": "/etc/orthanc", "mode": "ro"}},
                                ports={"8042/tcp": ("127.0.0.1", HTTP_PORTS["auth-on"])})
    try:
        assert _wait_http(HTTP_PORTS["auth-on"]).status_code == 401
        assert _wait_http(HTTP_PORTS["auth-on"], auth=("u", "p")).status_code == 200
        assert _wait_http(HTTP_PORTS["auth-on"], auth=("u", "wrong")).status_code == 401
    finally:
        box.remove(force=True, v=True)
