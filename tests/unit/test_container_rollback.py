"""replace.recreate: a failure at any step, the stop and the rename included, puts the old container back
running under its name (#17); volumes are never removed."""

from __future__ import annotations

import pytest
from docker.errors import APIError

from orthanc_harden.docker import replace, spec
from orthanc_harden.docker.assess import Assessment

NAME = "pacs"


class FakeContainer:
    def __init__(self, engine, name: str):
        self.engine, self.id, self.name, self.status = engine, f"id-{name}", name, "running"
        self.attrs = {"Config": {"Image": "orthancteam/orthanc:24.1.2", "StopTimeout": 3}, "Image": "sha256:old",
                      "State": {"Running": True}, "Mounts": []}

    def stop(self, timeout):
        self.engine.calls.append(("stop", self.name))
        self.status = "exited"

    def start(self):
        self.engine.calls.append(("start", self.name))
        self.status = "running"

    def reload(self):
        pass


class FakeApi:
    def __init__(self, engine):
        self.engine = engine

    def inspect_image(self, image):
        return {"Config": {}}

    def rename(self, container_id, name):
        self.engine.calls.append(("rename", name))
        if name in self.engine.taken:
            raise APIError(f"409 Client Error: Conflict (\"the name {name} is already in use\")")
        self.engine.by_id[container_id].name = name

    def create_container_from_config(self, body, name):
        raise AssertionError("nothing is created when the old container cannot be parked")

    def remove_container(self, container_id, **kwargs):
        assert kwargs.get("v") is False, "volumes are never removed"
        self.engine.calls.append(("remove", container_id))


class FakeContainers:
    def __init__(self, engine):
        self.engine = engine

    def get(self, key):
        return next(c for c in self.engine.by_id.values() if key in (c.id, c.name))


class FakeEngine:
    def __init__(self, taken=()):
        self.calls, self.taken = [], set(taken)
        old = FakeContainer(self, NAME)
        self.by_id = {old.id: old}
        self.api, self.containers = FakeApi(self), FakeContainers(self)


@pytest.fixture(autouse=True)
def no_spec(monkeypatch):
    monkeypatch.setattr(spec, "create_body", lambda *args: {})
    monkeypatch.setattr(spec, "networks", lambda attrs: ({}, {}))


def test_a_rename_that_fails_after_the_stop_starts_the_old_container_again():
    engine = FakeEngine(taken={f"{NAME}-orthanc-harden-old"})  # taken since the plan was made
    plan = Assessment(NAME, "orthancteam", "1.10.1", "orthancteam/orthanc:24.1.2", auth="recreate")
    with pytest.raises(replace.ReplaceError) as failure:
        replace.recreate(engine, plan, None, {"user": None, "timeout": 1}, "1.5.8")
    old = engine.containers.get(f"id-{NAME}")
    assert old.status == "running" and old.name == NAME
    assert engine.calls == [("stop", NAME), ("rename", f"{NAME}-orthanc-harden-old"), ("start", NAME)]
    assert "engine error: 409" in str(failure.value)
    assert f"old container {NAME} restored and started with its data" in str(failure.value)
