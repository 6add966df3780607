"""Discover Orthanc containers through the Docker Engine API and describe them like the host probe does."""

from __future__ import annotations

import io
import json
import posixpath
import tarfile

import docker
from docker.errors import APIError, DockerException, NotFound

from ..orthanc import reported_version
from ..remote import orthanc_config

KNOWN_IMAGES, FAMILY_DEFAULTS = orthanc_config.KNOWN_IMAGES, orthanc_config.FAMILY_DEFAULTS
IMAGE_STORAGE = "/var/lib/orthanc/db"


def family(container) -> str | None:
    return orthanc_config.container_family(container.attrs)


def _env_value(raw: str):
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def env_config(env: list[str]) -> tuple[list[dict], list[str]]:
    """ORTHANC__SECTION__KEY=... and ORTHANC_JSON as pseudo-files; *_SECRET names only (values are file paths)."""
    files, secrets = [], []
    for item in env:
        name, _, raw = item.partition("=")
        if name == "ORTHANC_JSON":
            files.append(_describe("env:ORTHANC_JSON", raw.encode()))
        elif name.startswith("ORTHANC__"):
            if name.endswith("_SECRET"):
                secrets.append(name)
                continue
            parts = name[len("ORTHANC__"):].split("__")
            key = "".join(word.capitalize() for word in parts[0].split("_"))
            if len(parts) == 1:
                files.append(_describe(f"env:{name}", json.dumps({key: _env_value(raw)}).encode()))
    return files, secrets


def _describe(path: str, raw: bytes, meta: dict | None = None) -> dict:
    """Same shape as the host probe's file entries, from bytes read over the API (secrets dropped in memory)."""
    entry = {"path": path, **(meta or {})}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        entry["parse_error"] = "line ?: not UTF-8 text"
        return entry
    return orthanc_config.describe(entry, text)


def json_files(container, directory: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The ``*.json`` files directly in `directory` of the container (Orthanc does not read sub-directories),
    read through the archive API, sorted by name."""
    try:
        stream, _ = container.get_archive(directory)
    except NotFound:
        return []
    archive = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
    return [(member, archive.extractfile(member).read())
            for member in sorted(archive.getmembers(), key=lambda m: m.name)
            if member.isfile() and member.name.endswith(".json")
            and posixpath.dirname(member.name) == posixpath.basename(directory.rstrip("/"))]


def config_files(container, directory: str) -> list[dict]:
    files = []
    for member, raw in json_files(container, directory):
        meta = {"owner": member.uname or str(member.uid), "group": member.gname or str(member.gid),
                "mode": "%04o" % member.mode}
        path = posixpath.join(directory, posixpath.basename(member.name))
        files.append(_describe(path, raw, meta))
    return files


def config_dir(container, kind: str | None = None) -> str:
    return orthanc_config.container_config_dir(container.attrs, kind)


def storage(container, directory: str) -> dict:
    """Where the DICOM store lives: a named or anonymous volume, a bind mount, or the writable layer."""
    declared = set((container.attrs["Config"].get("Volumes") or {}))
    explicit = {b.split(":")[1] for b in (container.attrs["HostConfig"].get("Binds") or []) if ":" in b}
    explicit |= {m.get("Target") for m in (container.attrs["HostConfig"].get("Mounts") or [])}
    best = None
    for mount in container.attrs.get("Mounts", []):
        dest = mount["Destination"].rstrip("/")
        if directory == dest or directory.startswith(dest + "/"):
            if best is None or len(dest) > len(best["Destination"]):
                best = mount
    if best is None:
        return {"type": "writable-layer", "path": directory}
    if best["Type"] == "bind":
        return {"type": "bind", "path": directory, "source": best["Source"]}
    anonymous = best["Destination"] in declared and best["Destination"] not in explicit
    return {"type": "anonymous-volume" if anonymous else "named-volume", "path": directory, "name": best.get("Name")}


def version(container) -> str | None:
    if container.status != "running":
        return None
    path = container.attrs.get("Path", "")
    binary = path if posixpath.basename(path) == "Orthanc" else "Orthanc"
    try:
        code, output = container.exec_run([binary, "--version"])
    except APIError:
        return None
    return reported_version(output.decode("utf-8", "replace")) if code == 0 else None


def discover(client: docker.DockerClient, filters: dict | None = None) -> list[dict]:
    """One description per Orthanc container on the engine (running or not), optionally scoped by filters."""
    found = []
    try:
        containers = client.containers.list(all=True, filters=filters or {})
    except DockerException as err:
        raise ConnectionError(f"Docker engine not reachable: {err}") from None
    try:
        engine_id = client.info().get("ID")
    except DockerException:
        engine_id = None
    for container in containers:
        kind = family(container)
        if kind is None:
            continue
        directory = config_dir(container, kind)
        files = [{"path": "image-defaults", "keys": [], "values": FAMILY_DEFAULTS.get(kind, {})}]
        env_files, secret_env = env_config(container.attrs["Config"].get("Env") or [])
        files += config_files(container, directory) + env_files
        store = IMAGE_STORAGE
        for entry in files:
            store = entry.get("values", {}).get("StorageDirectory", store)
        found.append({
            "name": container.name, "id": container.id[:12], "image": container.attrs["Config"].get("Image"),
            "family": kind, "status": container.status, "version": version(container), "config_dir": directory,
            "files": files, "secret_env": secret_env, "storage": storage(container, store),
            "ports": {k: v for k, v in (container.attrs["NetworkSettings"].get("Ports") or {}).items() if v},
            "engine_id": engine_id,
        })
    return found
