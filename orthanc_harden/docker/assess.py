"""Decide, read-only, what an Orthanc container needs: a newer image, authentication, or nothing, and whether the
tool may do it (never when a recreate would lose the DICOM store or be undone by docker compose).

Runs in pyinfra's plan and execute passes alike, so it only inspects and reads files through the archive API.
"""

from __future__ import annotations

import functools
import posixpath
from dataclasses import dataclass, field

from docker.errors import APIError, NotFound

from .. import versions
from ..orthanc import FLOOR, HTTP_PORT
from ..remote import load, orthanc_config
from . import inspection

ENV_FAMILIES = ("osimis", "orthancteam")
AUTH_ENV = "ORTHANC__AUTHENTICATION_ENABLED"
USERS_ENV = "ORTHANC__REGISTERED_USERS"
# Where env-configured images get their users: a JSON file they merge, never an environment variable.
USERS_FILE = "/etc/orthanc/orthanc-harden-users.json"
COMPOSE_PROJECT = "com.docker.compose.project"
# A recreate parks the old container under this name until its replacement passes the health gate.
PARKED_SUFFIX = "-orthanc-harden-old"


@dataclass
class ConfigFile:
    path: str
    text: str
    uid: int
    gid: int
    mode: int
    exists: bool = True


@dataclass
class Assessment:
    name: str
    family: str
    version: str | None
    image: str
    upgrade_to: str | None = None           # image reference to recreate from
    auth: str = "ok"                        # "ok", "files" (edit files, restart), "recreate" (env change)
    env: dict = field(default_factory=dict)  # variable -> value, None removes it
    files: list[ConfigFile] = field(default_factory=list)      # new contents (hold passwords: memory only)
    originals: list[ConfigFile] = field(default_factory=list)  # what they replace, for backups and rollback
    carry: list[ConfigFile] = field(default_factory=list)      # writable-layer config a recreate must copy over
    ports: dict | None = None               # new HostConfig.PortBindings (Orthanc's ports on one address only)
    http_port: int = HTTP_PORT              # Orthanc's HttpPort inside the container: the gate looks it up published
    summary: list[str] = field(default_factory=list)           # password-free description of the change
    resume: bool = False                    # only the parked old container is left: rename it back, start it
    refusal: str | None = None              # the tool must not do it: not compliant, with the advice
    error: str | None = None                # bad input: fail this container, change nothing

    @property
    def recreate(self) -> bool:
        return bool(self.upgrade_to) or self.auth == "recreate" or self.ports is not None

    @property
    def changes(self) -> bool:
        return not self.error and (self.resume or self.recreate or self.auth == "files")


def _env(attrs: dict) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in attrs["Config"].get("Env") or [])


def read_files(container, directory: str) -> list[ConfigFile]:
    """The ``*.json`` files directly in `directory` of the container, with owner and mode."""
    return [ConfigFile(posixpath.join(directory, posixpath.basename(member.name)), raw.decode("utf-8", "replace"),
                       member.uid, member.gid, member.mode & 0o7777)
            for member, raw in inspection.json_files(container, directory)]


def in_mount(attrs: dict, path: str) -> bool:
    """`path` is a mount of the container or lies in one: the old and a new container share it."""
    return any(path == m["Destination"] or path.startswith(m["Destination"].rstrip("/") + "/")
               for m in attrs.get("Mounts") or [])


def _compose_advice(attrs: dict, target: str | None, what: list[str]) -> str:
    labels = attrs["Config"].get("Labels") or {}
    files = labels.get("com.docker.compose.project.config_files", "the compose file")
    service = labels.get("com.docker.compose.service", "?")
    changes = [f"image: {target}"] if target else []
    changes += [f"environment {AUTH_ENV}: \"true\"", "users in a mounted JSON file or a secret"] \
        if "auth" in what else []
    changes += [f"ports: {what_ports}" for what_ports in what if what_ports.startswith("publish ")]
    return (f"managed by docker compose (project {labels.get(COMPOSE_PROJECT)}, service {service}): a recreate "
            f"here would be undone by the next `docker compose up`; change service {service} in {files} "
            f"({'; '.join(changes)}) and run `docker compose up -d {service}`, or set "
            "orthanc_harden_docker_compose: recreate")


def container_ports(files: list[ConfigFile], env: dict) -> dict[str, int]:
    """Orthanc's ``HttpPort`` and ``DicomPort`` inside the container, from its JSON files and environment."""
    parsed = []
    for entry in files:
        try:
            parsed.append(editor_parse(entry.text))
        except ValueError:
            continue
    return orthanc_config.container_orthanc_ports(parsed, env)


def orthanc_ports(files: list[ConfigFile], env: dict) -> set[str]:
    """Orthanc's HTTP and DICOM ports inside the container as Docker names them ("8042/tcp")."""
    return {f"{port}/tcp" for port in container_ports(files, env).values()}


def rebound(attrs: dict, ports: set[str], address: str) -> tuple[dict | None, list[str]]:
    """Port bindings with Orthanc's published ports on `address` only (host ports kept), and what moves; (None, [])
    when they already are. Other published ports are the administrator's and stay as they are."""
    bindings = attrs["HostConfig"].get("PortBindings") or {}
    wanted, moved = {}, []
    for port, entries in bindings.items():
        if port not in ports or not entries or all(e.get("HostIp") == address for e in entries):
            wanted[port] = entries
            continue
        host_ports = list(dict.fromkeys(e.get("HostPort") or "" for e in entries))  # 0.0.0.0 and :: share one
        wanted[port] = [{"HostIp": address, "HostPort": host_port} for host_port in host_ports]
        moved += [f"{port} from {_where(e)}" for e in entries if e.get("HostIp") != address]
    return (wanted, moved) if moved else (None, [])


def _where(binding: dict) -> str:
    address = binding.get("HostIp") or "every address"
    return f"{f'[{address}]' if ':' in address else address}:{binding.get('HostPort') or 'any port'}"


def _runtime_ids(container) -> tuple[int, int]:
    """The uid and gid Orthanc runs as in the container (exec runs as the container's configured user)."""
    ids = []
    for flag in ("-u", "-g"):
        code, output = container.exec_run(["id", flag])
        ids.append(int(output.strip()) if code == 0 and output.strip().isdigit() else 0)
    return ids[0], ids[1]


def _users_text(texts: list[ConfigFile], users: dict[str, str], mode: str, editor: dict, owner_ids=lambda: (0, 0)):
    """For env-configured images: the file holding RegisteredUsers (theirs or ours) and its new text, or None."""
    owner = next((f for f in texts if "RegisteredUsers" in editor["parse_config"](f.text)), None)
    current = editor["parse_config"](owner.text).get("RegisteredUsers", {}) if owner else {}
    wanted = dict(current, **users) if mode == "merge" else dict(users)
    if owner and current == wanted:
        return owner, None
    base = owner or ConfigFile(USERS_FILE, "{\n}\n", *owner_ids(), 0o400, exists=False)
    return base, editor["set_key"](base.text, "RegisteredUsers", wanted)


def assess(client, name: str, users: dict[str, str] | None, users_mode: str = "exact", floor: str = FLOOR,
           target: str | None = None, compose: str = "refuse", upgrade: bool = True,
           publish_address: str | None = None) -> Assessment:
    """What `name` needs. `users` are plain passwords here: the result's files hold them, so never print it.
    Without users the authentication control is not applied; without `upgrade` the version is not acted on;
    with `publish_address` Orthanc's published ports move to that address only."""
    try:
        container = client.containers.get(name)
    except NotFound:
        return _missing(client, name)
    result = _running_orthanc(container, name)
    if result.error:
        return result
    attrs, env = container.attrs, _env(container.attrs)
    directory = inspection.config_dir(container, result.family).rstrip("/") or "/"
    files = read_files(container, directory)
    storage = inspection.storage(container, _storage_directory(files))
    result.http_port = container_ports(files, env)["HttpPort"]
    if upgrade:
        _plan_upgrade(result, floor, target)
    if users is not None:
        _plan_auth(result, container, env, files, directory, users, users_mode)
        if result.error:
            return result
    if publish_address:
        # Docker's published ports bypass the host firewall's INPUT rules: the bind address is what limits them.
        result.ports, moved = rebound(attrs, orthanc_ports(files, env), publish_address)
        if moved:
            result.summary.append(f"published on {publish_address} only: {', '.join(moved)}")
    # Configuration kept in the writable layer (docker cp'd in) must follow a recreate.
    if not in_mount(attrs, directory):
        edited = {f.path for f in result.files}
        result.carry = [f for f in files if f.path not in edited]
    return _held_back(client, result, attrs, storage, compose)


def _missing(client, name: str) -> Assessment:
    """No container `name`: a recreate interrupted after parking it is resumed; otherwise bad input."""
    if parked(client, name) is not None:
        return Assessment(name, "?", None, "?", resume=True,
                          summary=[f"{name}{PARKED_SUFFIX}, left by an interrupted run, renamed back and started"])
    return Assessment(name, "?", None, "?", error=f"container {name}: no such container on this engine")


def _running_orthanc(container, name: str) -> Assessment:
    """The container's family, image and version; an error when it is not running or gives no version."""
    attrs = container.attrs
    result = Assessment(name, inspection.family(container) or "other", None, attrs["Config"].get("Image", "?"))
    if container.status != "running":
        result.error = (f"container {name} is {container.status}, not running: its Orthanc version cannot be "
                        "read; start it (or remove it if retired), nothing was changed")
        return result
    result.version = inspection.version(container)
    if result.version is None:
        result.error = f"container {name}: `Orthanc --version` gave no version inside the container"
    return result


def _storage_directory(files: list[ConfigFile]) -> str:
    store = inspection.IMAGE_STORAGE
    for entry in files:
        try:
            store = editor_parse(entry.text).get("StorageDirectory", store)
        except ValueError:
            pass
    return store


def _plan_upgrade(result: Assessment, floor: str, target: str | None) -> None:
    if versions.at_least(result.version, floor):
        return
    if not target:
        result.refusal = (f"container {result.name}: Orthanc {result.version} is below {floor} and no target image "
                          "is set for its family (orthanc_harden_docker_images)")
        return
    result.upgrade_to = target
    result.summary.append(f"image {result.image} (Orthanc {result.version}) -> {target}")


def _plan_auth(result: Assessment, container, env: dict, files: list[ConfigFile], directory: str,
               users: dict[str, str], users_mode: str) -> None:
    if result.family in ENV_FAMILIES:
        _plan_env_auth(result, container, env, files, directory, users, users_mode)
    else:
        _plan_file_auth(result, files, directory, users, users_mode)


def _plan_env_auth(result: Assessment, container, env: dict, files: list[ConfigFile], directory: str,
                   users: dict[str, str], users_mode: str) -> None:
    """Env-configured images: authentication by environment (a recreate), users in a JSON file they merge."""
    if str(env.get(AUTH_ENV, "")).lower() != "true":
        result.auth = "recreate"
        result.env[AUTH_ENV] = "true"
        result.summary.append(f"{AUTH_ENV}=true")
    if users_mode == "exact" and USERS_ENV in env:
        result.auth = "recreate"
        result.env[USERS_ENV] = None
        result.summary.append(f"{USERS_ENV} removed from the environment (users now come from a file)")
    try:
        base, text = _users_text(files, users, users_mode, _editor(), lambda: _runtime_ids(container))
    except ValueError as err:
        result.error = f"container {result.name}: a file in {directory} does not parse ({err}); nothing was changed"
        return
    if text is not None:
        result.originals.append(base)
        result.files.append(ConfigFile(base.path, text, base.uid, base.gid, base.mode & 0o750))
        result.summary.append(f"users {', '.join(sorted(users))} in {base.path} (mode "
                              f"{base.mode & 0o750:04o}, not in the environment)")
        result.auth = "recreate" if result.auth == "recreate" else "files"


def _plan_file_auth(result: Assessment, files: list[ConfigFile], directory: str, users: dict[str, str],
                    users_mode: str) -> None:
    """Files-configured images: AuthenticationEnabled and RegisteredUsers in their JSON files, then a restart."""
    editor = _editor()
    request = {"config_path": directory, "users": users, "users_mode": users_mode}
    try:
        edits, summary = editor["plan"](request, editor["parse_texts"]({f.path: f.text for f in files}))
    except editor["PlanError"] as err:
        result.error = f"container {result.name}: {err}"
        return
    by_path = {f.path: f for f in files}
    for path, text in sorted(edits.items()):
        old = by_path[path]
        mode = old.mode & 0o750 if path == summary["users_file"] else old.mode
        result.originals.append(old)
        result.files.append(ConfigFile(path, text, old.uid, old.gid, mode))
    if edits:
        result.auth = "files"
        result.summary.append(f"AuthenticationEnabled true, users {', '.join(sorted(users))} in "
                              f"{', '.join(sorted(edits))}")


def _held_back(client, result: Assessment, attrs: dict, storage: dict, compose: str) -> Assessment:
    """What a recreate must wait for: a parked old container (an error), or a store in the writable layer or a
    compose project (a refusal; authentication still goes on in place when it can)."""
    name = result.name
    if result.recreate and parked(client, name) is not None:
        # Its name is the one a recreate parks the old container under: never removed by the tool (it may be
        # the only copy of something), so the recreate waits for the administrator.
        result.error = (f"container {name}: {name}{PARKED_SUFFIX} exists (left by an interrupted run?): check it, "
                        f"then remove it (`docker rm {name}{PARKED_SUFFIX}` keeps its volumes) or rename it; "
                        "nothing was changed")
        return result
    blocker = _recreate_blocker(name, attrs, storage, compose, result) if result.recreate else None
    if blocker and result.auth == "files":
        # Authentication goes on in place; only what needs a recreate waits for the administrator.
        waiting = (["upgraded"] if result.upgrade_to else []) + (["rebound"] if result.ports else [])
        result.upgrade_to, result.ports = None, None
        result.refusal = f"container {name}: not {' or '.join(waiting)}: {blocker}"
    elif blocker:
        result.refusal = f"container {name}: not recreated: {blocker}"
        result.upgrade_to, result.auth, result.env, result.files, result.originals = None, "ok", {}, [], []
        result.ports = None
    return result


def parked(client, name: str):
    """The old container a recreate of `name` parked and did not remove (an interrupted run), or None."""
    try:
        return client.containers.get(f"{name}{PARKED_SUFFIX}")
    except NotFound:
        return None


def _recreate_blocker(name: str, attrs: dict, storage: dict, compose: str, result: Assessment) -> str | None:
    if storage["type"] == "writable-layer":
        return (f"its DICOM store {storage['path']} is in the container's writable layer and a recreate would "
                f"delete it: copy it out (`docker cp {name}:{storage['path']} /srv/{name}-db`), run the container "
                f"with `-v /srv/{name}-db:{storage['path']}`, then run orthanc-harden again")
    if (attrs["Config"].get("Labels") or {}).get(COMPOSE_PROJECT) and compose != "recreate":
        what = (["auth"] if result.auth == "recreate" else []) + \
            ([f"publish on {address}" for address in _addresses(result.ports)] if result.ports else [])
        return _compose_advice(attrs, result.upgrade_to, what)
    return None


def _addresses(bindings: dict) -> list[str]:
    return sorted({e["HostIp"] for entries in bindings.values() for e in entries or [] if e.get("HostIp")})


@functools.lru_cache(maxsize=1)
def _editor() -> dict:
    return load("auth")


def editor_parse(text: str) -> dict:
    parsed = _editor()["parse_config"](text)
    return parsed if isinstance(parsed, dict) else {}


def digest_matches(client, reference: str) -> tuple[bool, str | None]:
    """(local image is the registry's current one, the reason it cannot tell). Never pulls."""
    try:
        local = client.images.get(reference)
    except NotFound:
        return False, None
    try:
        remote = client.api.inspect_distribution(reference)["Descriptor"]["digest"]
    except (APIError, KeyError) as err:
        # The engine's own words ("dial tcp ...: connection refused"), not the SDK's wrapper around them.
        reason = (getattr(err, "explanation", None) or str(err)).splitlines()[0][:160]
        return True, f"registry not asked ({reason}): using the local {reference}"
    return any(d.endswith("@" + remote) for d in local.attrs.get("RepoDigests") or []), None
