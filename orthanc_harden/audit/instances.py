"""Turn what the probes report into one plain description per Orthanc instance (the findings' input)."""

from __future__ import annotations

import re

from ..orthanc import CONFIG_DIR
from . import effective

DEFAULT_UNIT_GROUP = {"orthanc": "orthanc"}


def _ufw_open_ports(rules: list[str], ports: list[int]) -> list[int]:
    default_allow = any(re.match(r"Default: allow \(incoming\)", line) for line in rules)
    open_ports = []
    for port in ports:
        pattern = re.compile(rf"^{port}(/tcp)?\s+ALLOW IN\s+Anywhere")
        if default_allow or any(pattern.match(line.strip()) for line in rules):
            open_ports.append(port)
    return open_ports


def firewall_view(firewall: dict, ports: list[int]) -> dict:
    view = {"backend": firewall.get("backend", "none"), "active": bool(firewall.get("active"))}
    if not view["active"]:
        view["ports_open_to_all"] = ports
    elif view["backend"] == "ufw":
        view["ports_open_to_all"] = _ufw_open_ports(firewall.get("rules", []), ports)
    else:
        view["ports_open_to_all"] = None  # read precisely by the firewall control; not guessed here
    return view


def from_host_state(host_name: str, host_state: dict) -> list[dict]:
    """Package/unit/process instances of one host; [] when the host has no Orthanc at all."""
    units = host_state.get("units", [])
    unit_pids = {u["main_pid"] for u in units if u.get("main_pid")}
    runners = [("unit", u) for u in units] + [("process", p) for p in host_state.get("processes", [])
                                              if p["pid"] not in unit_pids]
    package = host_state.get("package", {})
    if not runners and (package.get("version") or host_state.get("binaries")):
        runners = [("package", {"unit": None, "binary": next(iter(host_state.get("binaries") or {}), None),
                                "config_path": CONFIG_DIR, "user": "orthanc"})]
    seen, instances = set(), []
    for origin, runner in runners:
        config_path = runner.get("config_path") or CONFIG_DIR
        key = (runner.get("binary"), config_path, runner.get("pid") if runner.get("untrusted") else None)
        if key in seen:
            continue
        seen.add(key)
        version = (host_state.get("binaries") or {}).get(runner.get("binary")) or package.get("version")
        config = host_state.get("configs", {}).get(config_path, {"kind": "missing", "files": []})
        view = effective.effective(config.get("files", []), version)
        if runner.get("untrusted") and config.get("kind") == "missing":
            view["unknown"] = True  # not read on purpose: nothing is evaluated from defaults
        elif config.get("kind") == "missing":
            view["parse_errors"][config_path] = "configuration path does not exist"
        view["service_group"] = runner.get("group") or DEFAULT_UNIT_GROUP.get(runner.get("user"), runner.get("user"))
        ports = [view["effective"]["HttpPort"], view["effective"]["DicomPort"]]
        instances.append({
            "host": host_name, "instance": runner.get("unit") or f"pid {runner.get('pid', '?')}",
            "kind": "package", "origin": origin, "version": version, "package_version": package.get("version"),
            "held": package.get("held", []), "config_path": config_path, "config": view,
            "active": runner.get("active", "running" if origin == "process" else None),
            "firewall": firewall_view(host_state.get("firewall", {}), ports),
            **({"untrusted": f"{runner.get('unit') or 'pid ' + str(runner.get('pid'))} "
                             f"(user {runner.get('user') or '?'}): {runner['untrusted']}"}
               if runner.get("untrusted") else {}),
        })
    return instances


def from_container(host_name: str, container: dict, docker_url: str) -> dict:
    view = effective.effective(container["files"], container["version"])
    view["service_group"] = None
    published = []
    for port in (view["effective"]["HttpPort"], view["effective"]["DicomPort"]):
        for binding in container["ports"].get(f"{port}/tcp", []):
            published.append({"port": port, "host_ip": binding["HostIp"], "host_port": int(binding["HostPort"])})
    open_to_all = sorted({p["port"] for p in published if p["host_ip"] in ("0.0.0.0", "::", "")})
    return {
        "host": host_name, "instance": container["name"], "kind": "container", "origin": container["family"],
        "image": container["image"], "version": container["version"], "config_path": container["config_dir"],
        "config": view, "active": container["status"], "docker_url": docker_url, "published": published,
        "storage": container.get("storage"), "secret_env": container["secret_env"],
        "engine_id": container.get("engine_id"),
        # Published ports bypass the host's INPUT chain; only a 0.0.0.0 binding is open to every source here.
        "firewall": {"backend": "docker-publish", "active": True, "ports_open_to_all": open_to_all},
    }


def docker_user_closed(instance: dict, closed: set[int]) -> bool:
    """Take the host ports that the engine host's DOCKER-USER chain closes out of a container's open ports;
    True when that changed the view (its findings must be evaluated again)."""
    firewall = instance["firewall"]
    if not closed:
        return False
    still = sorted({p["port"] for p in instance.get("published", [])
                    if p["host_ip"] in ("0.0.0.0", "::", "") and p["host_port"] not in closed})
    if still == firewall.get("ports_open_to_all"):
        return False
    firewall.update(backend="docker-user", ports_open_to_all=still)
    return True


def local_probe_url(instance: dict) -> str | None:
    """Where the control node reaches a container of its own engine (``unix://``): the HTTP port published on the
    loopback or every address, so ORTH-108 is probed there as for any host; None for a remote engine (its
    published addresses are the remote host's) or a port published nowhere the control node can use."""
    if not str(instance.get("docker_url") or "").startswith("unix://"):
        return None
    port = instance["config"]["effective"]["HttpPort"]
    for binding in instance.get("published", []):
        if binding["port"] == port and binding["host_ip"] in ("127.0.0.1", "0.0.0.0", ""):
            scheme = "https" if instance["config"]["effective"].get("SslEnabled") else "http"
            return f"{scheme}://127.0.0.1:{binding['host_port']}"
    return None
