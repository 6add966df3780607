"""A container's planned change as a dry run shows it: image and settings from and to, file diffs, no secret."""

from __future__ import annotations

from docker.errors import NotFound

from .assess import USERS_ENV, Assessment, _editor, _env
from ..masking import MASK


def _bindings(bindings: dict | None) -> str:
    if not bindings:
        return "none"
    return ", ".join(f"{port} on {entry.get('HostIp') or 'every address'}:{entry.get('HostPort') or 'any port'}"
                     for port, entries in sorted(bindings.items()) for entry in entries or [])


def _shown(variable: str, value: str | None) -> str:
    if value is None:
        return "(unset)"
    # The users variable holds passwords; any other ORTHANC__ value is a setting the operator chose.
    return MASK if variable == USERS_ENV else value


def describe(client, plan: Assessment) -> tuple[dict, dict[str, str]]:
    """(settings {name: {"from", "to"}}, masked diffs {path: diff}) of one planned container change."""
    settings: dict[str, dict] = {}
    if plan.resume:
        settings["container"] = {"from": "parked by an interrupted run", "to": "renamed back and started"}
        return settings, {}
    try:
        attrs = client.containers.get(plan.name).attrs
    except NotFound:
        attrs = {"Config": {}, "HostConfig": {}}
    if plan.upgrade_to:
        settings["image"] = {"from": f"{plan.image} (Orthanc {plan.version})", "to": plan.upgrade_to}
    env = _env(attrs) if attrs.get("Config") else {}
    for variable, value in sorted(plan.env.items()):
        settings[f"environment {variable}"] = {"from": _shown(variable, env.get(variable)),
                                               "to": _shown(variable, value)}
    if plan.ports is not None:
        settings["published ports"] = {"from": _bindings(attrs["HostConfig"].get("PortBindings")),
                                       "to": _bindings(plan.ports)}
    if plan.recreate:
        settings["container"] = {"from": "running", "to": "recreated with every other setting, volume and "
                                                          "network kept; the old one kept until healthy"}
    elif plan.auth == "files":
        settings["container"] = {"from": "running", "to": "restarted once"}
    masked_diff = _editor()["masked_diff"]
    originals = {entry.path: entry for entry in plan.originals}
    diffs = {}
    for entry in plan.files:
        old = originals.get(entry.path)
        diffs[f"{plan.name}:{entry.path}"] = masked_diff(f"{plan.name}:{entry.path}",
                                                         old.text if old is not None and old.exists else None,
                                                         entry.text)
        if old is not None and old.mode != entry.mode:
            settings[f"mode of {entry.path}"] = {"from": f"{old.mode:04o}", "to": f"{entry.mode:04o}"}
    return settings, diffs
