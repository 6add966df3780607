"""What a user set on a container, told apart from what its image brought, and the body that recreates it.

Watchtower's approach (read, not copied): subtract the old image's defaults from the container's Config, so the new
image's own defaults apply and nothing the user chose is lost. HostConfig is kept as it is, anonymous volumes are
added to it explicitly (a plain create would give the new container fresh, empty ones: the DICOM store would be
gone), and every network endpoint is kept with its aliases and static addresses.
"""

from __future__ import annotations

import copy

def _minus(items: list[str] | None, image_items: list[str] | None) -> list[str] | None:
    kept = [item for item in items or [] if item not in set(image_items or [])]
    return kept or None


def user_config(container: dict, image: dict) -> dict:
    """The container's Config without what equals its image's defaults."""
    config = copy.deepcopy(container["Config"])
    image_config = image.get("Config") or {}
    config["Env"] = _minus(config.get("Env"), image_config.get("Env"))
    image_labels = image_config.get("Labels") or {}
    config["Labels"] = {k: v for k, v in (config.get("Labels") or {}).items() if image_labels.get(k) != v}
    config["Volumes"] = {k: v for k, v in (config.get("Volumes") or {}).items()
                         if k not in (image_config.get("Volumes") or {})} or None
    config["ExposedPorts"] = {k: v for k, v in (config.get("ExposedPorts") or {}).items()
                              if k not in (image_config.get("ExposedPorts") or {})}
    for port in (container["HostConfig"].get("PortBindings") or {}):
        config["ExposedPorts"][port] = {}  # the engine refuses bindings for ports that are not exposed
    config["ExposedPorts"] = config["ExposedPorts"] or None
    for key in ("Entrypoint", "Cmd", "WorkingDir", "User", "Healthcheck", "StopSignal", "Shell", "OnBuild"):
        if config.get(key) == image_config.get(key):
            config.pop(key, None)
    if config.get("Entrypoint") is not None and "Cmd" not in config and image_config.get("Cmd"):
        # A user entrypoint resets the image's CMD at create time; keep the empty command that was in force.
        config["Cmd"] = container["Config"].get("Cmd")
    # The engine names the host after the container id unless the user chose a name: keep only a chosen one.
    if container["Config"].get("Hostname") and not container["Id"].startswith(container["Config"]["Hostname"]):
        config["Hostname"] = container["Config"]["Hostname"]
        if container["Config"].get("Domainname"):
            config["Domainname"] = container["Config"]["Domainname"]
    else:
        config.pop("Hostname", None)
        config.pop("Domainname", None)
    return config


def anonymous_volumes(container: dict) -> list[str]:
    """``name:destination[:ro]`` for each volume mount the user did not name (the image's VOLUME entries)."""
    host_config = container["HostConfig"]
    explicit = {bind.split(":")[1] for bind in host_config.get("Binds") or [] if ":" in bind}
    explicit |= {mount.get("Target") for mount in host_config.get("Mounts") or []}
    binds = []
    for mount in container.get("Mounts") or []:
        if mount.get("Type") == "volume" and mount["Destination"] not in explicit:
            binds.append(f"{mount['Name']}:{mount['Destination']}" + ("" if mount.get("RW", True) else ":ro"))
    return sorted(binds)


def _endpoint(settings: dict, container_id: str) -> dict:
    aliases = [a for a in settings.get("Aliases") or [] if not container_id.startswith(a)]
    endpoint = {"Aliases": aliases or None, "Links": settings.get("Links")}
    ipam = settings.get("IPAMConfig")
    if ipam:
        endpoint["IPAMConfig"] = ipam
    if settings.get("DriverOpts"):
        endpoint["DriverOpts"] = settings["DriverOpts"]
    return endpoint


def networks(container: dict) -> tuple[dict, dict]:
    """(the endpoint to create with, {network: endpoint} to connect afterwards); empty for host/none/container:."""
    mode = container["HostConfig"].get("NetworkMode") or "default"
    attached = container["NetworkSettings"].get("Networks") or {}
    if mode in ("host", "none") or mode.startswith("container:"):
        return {}, {}
    first = mode if mode in attached else ("bridge" if mode == "default" and "bridge" in attached else None)
    endpoints = {name: _endpoint(value, container["Id"]) for name, value in attached.items()}
    primary = {first: endpoints.pop(first)} if first else {}
    return primary, endpoints


def create_body(container: dict, old_image: dict, image_ref: str, env: dict[str, str | None] | None = None,
                port_bindings: dict | None = None) -> dict:
    """The Engine API body recreating `container` from `image_ref`, with `env` set (None removes a variable) and,
    when given, `port_bindings` in place of the old ones."""
    config = user_config(container, old_image)
    config["Image"] = image_ref
    variables = list(config.get("Env") or [])
    for name, value in (env or {}).items():
        variables = [v for v in variables if v.partition("=")[0] != name]
        if value is not None:
            variables.append(f"{name}={value}")
    # Variables the image defines and the user did not override were subtracted above; an explicit change is kept.
    config["Env"] = variables or None
    host_config = copy.deepcopy(container["HostConfig"])
    if port_bindings is not None:
        host_config["PortBindings"] = port_bindings
    anonymous = anonymous_volumes(container)
    host_config["Binds"] = (host_config.get("Binds") or []) + anonymous or None
    primary, _ = networks(container)
    body = dict(config, HostConfig=host_config)
    if primary:
        body["NetworkingConfig"] = {"EndpointsConfig": primary}
    return body


# What must be equal before and after a recreate; only the image and the auth settings may differ.
PRESERVED = {
    "Config": ("User", "Cmd", "Entrypoint", "WorkingDir", "Labels", "Healthcheck", "StopSignal", "Hostname"),
    "HostConfig": ("Mounts", "PortBindings", "RestartPolicy", "NetworkMode", "CapAdd", "CapDrop",
                   "ExtraHosts", "LogConfig", "Memory", "NanoCpus", "CpuShares", "PidsLimit", "Ulimits", "Dns",
                   "SecurityOpt", "Privileged", "ReadonlyRootfs", "Tmpfs", "ShmSize", "Devices"),
}


def preserved_view(container: dict, image: dict) -> dict:
    """The settings a recreate must keep, as comparable data: the user's part of Config (`image` is the
    container's image, whose defaults are not the user's) and HostConfig. Mounts are compared as attached (type,
    name or source, destination, writable), since a recreate names the anonymous volumes in its binds."""
    config = user_config(container, image)
    view = {f"Config.{key}": config.get(key) for key in PRESERVED["Config"]}
    view.update({f"HostConfig.{key}": container["HostConfig"].get(key) for key in PRESERVED["HostConfig"]})
    view["Mounts"] = sorted((m.get("Type"), m.get("Name") or m.get("Source"), m["Destination"], m.get("RW"))
                            for m in container.get("Mounts") or [])
    view["Networks"] = {name: {"Aliases": sorted(a for a in ep.get("Aliases") or []
                                                 if not container["Id"].startswith(a)),
                               "IPAMConfig": ep.get("IPAMConfig") or None}
                        for name, ep in (container["NetworkSettings"].get("Networks") or {}).items()}
    return view
