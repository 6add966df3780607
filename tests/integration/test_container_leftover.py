"""A container recreate never leaves Orthanc stopped (#17), on the lab's own Orthanc container and engine.

A parked ``NAME-orthanc-harden-old`` left by an interrupted run used to make the rename fail after the stop, outside
the rollback: Orthanc stayed down. Now the recreate is refused before anything changes, with one line, and a
run that finds only the parked container (interrupted after the rename) resumes it: renamed back, started, then
hardened. No volume is ever removed; the DICOM instances stay.
"""

from __future__ import annotations

import json

import docker
import pytest
import requests


from tests.conftest import run_cli
from tests.integration.conftest import fresh_lab

pytestmark = pytest.mark.lab

LAB = "pytest-leftover"
ENGINE = f"@dockerengine/{LAB}-engine"
CANARY = "Canary-leftover-0b7d-\"x'"
AUTH = ("radiology", CANARY.encode())
PARKED_SUFFIX = "-orthanc-harden-old"  # the name a recreate parks the old container under
INVENTORY = """
import json, os
from orthanc_harden.lab.inventory import groups
_extra = json.loads(os.environ.get("OH_TEST_ENGINE_DATA", "{}"))
container_engines = [(name, {**data, **_extra}) for name, data in groups(os.environ["ORTHANC_HARDEN_LAB"])[
    "container_engines"]]
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    data = fresh_lab(LAB, 1, 1, 20300)
    work = tmp_path_factory.mktemp("leftover")
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    (work / "inventory.py").write_text(INVENTORY)
    data["env"] = {"ORTHANC_HARDEN_LAB": LAB, "ORTHANC_HARDEN_LAB_USERS_REF": f"file:{users}"}
    data["work"] = work
    data["engine"] = docker.from_env()
    yield data
    data["engine"].close()
    run_cli("lab", "down", "--lab", LAB)


def _remediate(lab, **extra) -> tuple[int, str, dict]:
    report = lab["work"] / "report.json"
    report.unlink(missing_ok=True)
    proc = run_cli("remediate", str(lab["work"] / "inventory.py"), "--json", str(report),
                   env={**lab["env"], "OH_TEST_ENGINE_DATA": json.dumps(extra)})
    output = proc.stdout + proc.stderr
    text = report.read_text()
    assert CANARY not in output and CANARY not in text
    assert "Traceback" not in output, output[-3000:]
    return proc.returncode, output, {row["host"]: row for row in json.loads(text)["hosts"]}[ENGINE]


def _served(lab, auth=None) -> set[str]:
    port = lab["containers"][0]["http_port"]
    answer = requests.get(f"http://127.0.0.1:{port}/instances", auth=auth, timeout=10)
    answer.raise_for_status()
    return set(answer.json())


def _wait_served(lab, auth=None) -> set[str]:
    import time

    deadline = time.monotonic() + 60
    while True:
        try:
            return _served(lab, auth)
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_a_leftover_parked_container_refuses_the_recreate_and_orthanc_keeps_running(lab):
    engine, entry = lab["engine"], lab["containers"][0]
    name = entry["container"]
    label = engine.api.inspect_container(name)["Config"]["Labels"]
    before = engine.api.inspect_container(name)
    leftover_volume = f"{name}-leftover-db"
    engine.volumes.create(leftover_volume, labels=label)
    leftover = engine.api.create_container(lab["images"]["app"], name=f"{name}{PARKED_SUFFIX}", labels=label,
                                           host_config=engine.api.create_host_config(
                                               binds=[f"{leftover_volume}:/var/lib/orthanc/db"]))["Id"]
    try:
        # A newer floor makes the run recreate the container (from the lab's image): the parked name is taken.
        code, output, row = _remediate(lab, orthanc_harden_min_version="1.10.2",
                                       orthanc_harden_docker_images={"other": lab["images"]["app"]})
        assert code == 2 and row["status"] == "failed", output[-3000:]
        assert row["reason"] == (f"container {name}: {name}{PARKED_SUFFIX} exists (left by an interrupted run?): "
                                 f"check it, then remove it (`docker rm {name}{PARKED_SUFFIX}` keeps its volumes) "
                                 "or rename it; nothing was changed"), row
        after = engine.api.inspect_container(name)
        assert after["Id"] == before["Id"] and after["State"]["Running"], "Orthanc still running, not recreated"
        assert after["State"]["StartedAt"] == before["State"]["StartedAt"], "not even restarted"
        assert engine.api.inspect_container(leftover)["Name"] == f"/{name}{PARKED_SUFFIX}", "the leftover stays"
        assert {v.name for v in engine.volumes.list()} >= {leftover_volume, entry["volume"]}, "volumes intact"
        assert set(entry["seeded_instances"]) <= _wait_served(lab, AUTH)
    finally:
        engine.api.remove_container(leftover, v=False)


def test_only_the_parked_container_left_is_resumed_then_hardened(lab):
    """An interrupted run stopped and parked the container: the next run renames it back, starts and hardens it."""
    engine, entry = lab["engine"], lab["containers"][0]
    name = entry["container"]
    container = engine.containers.get(name)
    container.stop(timeout=10)
    engine.api.rename(container.id, f"{name}{PARKED_SUFFIX}")

    code, output, row = _remediate(lab)
    assert code == 0 and row["status"] == "changed", output[-3000:]
    assert row["changes"][0].startswith(f"container {name}: {name}{PARKED_SUFFIX}, left by an interrupted run, "
                                        f"renamed back to {name} and started"), row
    after = engine.api.inspect_container(name)
    assert after["Id"] == container.id and after["State"]["Running"]
    assert requests.get(f"http://127.0.0.1:{entry['http_port']}/system", timeout=10).status_code == 401
    assert set(entry["seeded_instances"]) <= _wait_served(lab, AUTH), "the DICOM instances are all there"
    assert entry["volume"] in {m.get("Name") for m in after["Mounts"]}

    code, output, row = _remediate(lab)
    assert code == 0 and row["status"] == "compliant" and row["changes"] == [], output[-3000:]
    assert engine.api.inspect_container(name)["State"]["StartedAt"] == after["State"]["StartedAt"]
