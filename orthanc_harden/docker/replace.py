"""Carry out an assessment on the engine: write files in place and restart, or recreate from a new image.

A recreate keeps the old container, stopped and renamed, until the new one passes the health gate (anonymous 401,
a store user 200, Orthanc at or above the floor). On any failure the new container is removed, edited files in a
shared mount get their old contents back, and the old container gets its name back and runs again.
Volumes are never removed: ``remove(v=False)`` everywhere.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import time


from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from .. import versions
from ..orthanc import HTTP_PORT
from ..checks.health import answering, wait_for_auth
from . import engine, inspection, spec
from .assess import PARKED_SUFFIX, Assessment, ConfigFile, digest_matches, in_mount, parked

# As on package hosts: the file as it was before orthanc-harden first changed it, kept once, 0600. The rollback
# restores from the copies it holds in memory, so no rolling backup keeps a rotated password on disk.
ORIGINAL_SUFFIX = ".orthanc-harden-original"
OLD_SUFFIX = PARKED_SUFFIX


class ReplaceError(Exception):
    """A step failed; the message is one line without secrets."""


def _tar(files: list[ConfigFile], suffix: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in files:
            data = entry.text.encode("utf-8")
            info = tarfile.TarInfo(posixpath.basename(entry.path) + suffix)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), entry.mode, entry.uid, entry.gid, \
                int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _put(container, files: list[ConfigFile], running: bool) -> None:
    """Write files; in a running container through a temporary name and a rename, so Orthanc never reads half."""
    for directory in sorted({posixpath.dirname(f.path) for f in files}):
        batch = [f for f in files if posixpath.dirname(f.path) == directory]
        if not running:
            if not container.put_archive(directory, _tar(batch)):
                raise ReplaceError(f"could not write into {directory} of {container.name}")
            continue
        if not container.put_archive(directory, _tar(batch, ".orthanc-harden-new")):
            raise ReplaceError(f"could not write into {directory} of {container.name}")
        for entry in batch:
            code, output = container.exec_run(["mv", "-f", entry.path + ".orthanc-harden-new", entry.path])
            if code != 0:
                raise ReplaceError(f"could not rename into {entry.path}: {output.decode(errors='replace')[:200]}")


def _kept(container, path: str) -> bool:
    try:
        stream, _ = container.get_archive(path)
    except NotFound:
        return False
    for _chunk in stream:  # drain the response: a few bytes
        pass
    return True


def _backup(container, originals: list[ConfigFile], running: bool) -> None:
    """Owner-only copies of the files about to change as they were before orthanc-harden's first change, once."""
    copies = [ConfigFile(f.path + ORIGINAL_SUFFIX, f.text, f.uid, f.gid, 0o600) for f in originals
              if f.exists and not _kept(container, f.path + ORIGINAL_SUFFIX)]
    if copies:
        _put(container, copies, running)


def _restore(container, originals: list[ConfigFile], running: bool) -> None:
    """Put the old contents back; a file the tool added goes (or, in a stopped container, becomes ``{}``)."""
    _put(container, [f for f in originals if f.exists], running)
    for entry in (f for f in originals if not f.exists):
        if running:
            container.exec_run(["rm", "-f", entry.path])
        else:
            _put(container, [ConfigFile(entry.path, "{}\n", entry.uid, entry.gid, entry.mode)], running)


def _log_tail(container, lines: int = 5) -> str:
    try:
        text = container.logs(tail=lines).decode("utf-8", "replace")
    except (APIError, NotFound):
        return "(no log)"
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())[-600:]


def _stop_timeout(attrs: dict) -> int:
    return int(attrs["Config"].get("StopTimeout") or 10)


def published_url(attrs: dict, engine_address: str | None, http_port: int = HTTP_PORT) -> str | None:
    """Orthanc's HTTP port (`http_port` inside the container) as the container publishes it now, reached at
    `engine_address` (``engine.address``) when it is published on every address."""
    bindings = (attrs["NetworkSettings"].get("Ports") or {}).get(f"{http_port}/tcp") or []
    if not bindings:
        return None
    address = bindings[0]["HostIp"]
    if address in ("", "0.0.0.0", "::"):
        if not engine_address:
            return None
        address = engine_address
    return f"http://{f'[{address}]' if ':' in address else address}:{bindings[0]['HostPort']}"


def _gate(client, plan: Assessment, probe_url: str | None, gate: dict, floor: str | None) -> tuple[bool, str]:
    container = client.containers.get(plan.name)
    # Read after the change: a recreate may have moved the port (orthanc_harden_docker_publish_address).
    probe_url = probe_url or published_url(container.attrs, engine.address(client), plan.http_port)
    if not probe_url:
        ok, detail = False, "no URL to check Orthanc's HTTP port (set orthanc_harden_probe_urls)"
    elif gate["user"] is None:
        ok, detail = answering(probe_url, gate["timeout"])
    else:
        ok, detail = wait_for_auth(probe_url, gate["user"], gate["password"].unmask(), gate["timeout"])
    if not ok:
        return False, detail
    container.reload()
    version = inspection.version(container)
    if floor and not versions.at_least(version, floor):
        return False, f"Orthanc {version} answers but is below {floor}"
    return True, f"{detail}, Orthanc {version}"



def ensure_image(client, reference: str, pull_timeout: int = 600) -> str:
    """Pull `reference` when it is missing locally or the registry holds a different digest; returns a note."""
    current, note = digest_matches(client, reference)
    if current:
        return note or f"{reference} already present"
    repository, _, tag = reference.rpartition(":") if ":" in reference.rsplit("/", 1)[-1] else (reference, "", "")
    try:
        client.images.pull(repository, tag=tag or "latest")
    except (APIError, DockerException) as err:
        reason = str(getattr(err, "explanation", None) or err).splitlines()[0][:200]
        if "no basic auth credentials" in reason or "unauthorized" in reason.lower():
            # The SDK sends the control node's own `docker login` credentials (~/.docker/config.json).
            reason += f" (run `docker login {repository.split('/')[0]}` on the control node)"
        raise ReplaceError(f"cannot pull {reference}: {reason}") from None
    try:
        client.images.get(reference)
    except ImageNotFound:
        raise ReplaceError(f"pulled {reference} but the engine does not have it") from None
    return f"pulled {reference}"


def in_place(client, plan: Assessment, probe_url: str | None, gate: dict) -> str:
    """Write the files, restart once, gate; on failure put the old files back and restart again. The version is
    not gated: an in-place change does not alter it (a refused upgrade is reported on its own)."""
    container = client.containers.get(plan.name)
    _backup(container, plan.originals, running=True)
    _put(container, plan.files, running=True)
    container.restart(timeout=_stop_timeout(container.attrs))
    ok, detail = _gate(client, plan, probe_url, gate, None)
    if ok:
        return f"authentication on, restarted and healthy: {detail}"
    tail = _log_tail(container)
    container.reload()
    if container.status != "running":
        container.start()  # exec (the atomic rename) needs it running; Orthanc may fail again until restored
        container.reload()
    _restore(container, plan.originals, running=container.status == "running")
    container.restart(timeout=_stop_timeout(container.attrs))
    raise ReplaceError(f"health gate failed: {detail}; old configuration restored and {plan.name} restarted; "
                       f"log: {tail}")


def _connect_networks(client, container_id: str, endpoints: dict) -> None:
    for network, endpoint in endpoints.items():
        ipam = endpoint.get("IPAMConfig") or {}
        client.api.connect_container_to_network(
            container_id, network, aliases=endpoint.get("Aliases"), links=endpoint.get("Links"),
            ipv4_address=ipam.get("IPv4Address"), ipv6_address=ipam.get("IPv6Address"),
            link_local_ips=ipam.get("LinkLocalIPs"))


def recreate(client, plan: Assessment, probe_url: str | None, gate: dict, floor: str) -> str:
    """Stop and rename the old container, create and start its replacement, gate, then remove or roll back."""
    old = client.containers.get(plan.name)
    attrs = old.attrs
    reference = plan.upgrade_to or attrs["Config"]["Image"]
    note = ensure_image(client, reference) if plan.upgrade_to else "same image"
    old_image = client.api.inspect_image(attrs["Image"])
    body = spec.create_body(attrs, old_image, reference, plan.env, plan.ports)
    _, extra_networks = spec.networks(attrs)
    shared = [f for f in plan.files if in_mount(attrs, f.path)]
    own = [f for f in plan.files if not in_mount(attrs, f.path)]

    new_id = None
    # The stop and the rename are inside the rollback: a rename that fails (a name taken since the plan) must not
    # leave Orthanc stopped.
    try:
        old.stop(timeout=_stop_timeout(attrs))
        client.api.rename(old.id, f"{plan.name}{OLD_SUFFIX}")
        if shared:
            _backup(old, [f for f in plan.originals if in_mount(attrs, f.path)], running=False)
            _put(old, shared, running=False)
        new_id = client.api.create_container_from_config(body, name=plan.name)["Id"]
        new = client.containers.get(new_id)
        if own or plan.carry:
            _put(new, plan.carry + own, running=False)
        _connect_networks(client, new_id, extra_networks)
        new.start()
        ok, detail = _gate(client, plan, probe_url, gate, floor)
        if not ok:
            raise ReplaceError(f"health gate failed: {detail}; log: {_log_tail(new)}")
    except (ReplaceError, DockerException) as err:
        back = _roll_back(client, plan, old.id, new_id, attrs)
        reason = str(err) if isinstance(err, ReplaceError) else f"engine error: {str(err).splitlines()[0][:200]}"
        raise ReplaceError(f"{reason}; {back}") from None
    client.api.remove_container(old.id, v=False)
    return f"recreated ({note}): {detail}"


def _roll_back(client, plan: Assessment, old_id: str, new_id: str | None, attrs: dict) -> str:
    """Every step is tried on its own: whatever else fails, the old container runs again if it ran before."""
    problems = []

    def step(action, *args, **kwargs):
        try:
            action(*args, **kwargs)
        except (DockerException, ReplaceError) as err:
            problems.append(str(err).splitlines()[0][:200])

    if new_id:
        step(client.api.remove_container, new_id, force=True, v=False)
    try:
        old = client.containers.get(old_id)
        step(_restore, old, [f for f in plan.originals if in_mount(attrs, f.path)], running=False)
        old.reload()
        if old.name != plan.name:
            step(client.api.rename, old_id, plan.name)
        old.reload()
        if attrs["State"].get("Running") and old.status != "running":
            step(old.start)
        old.reload()
    except DockerException as err:
        return f"ROLLBACK INCOMPLETE ({str(err).splitlines()[0][:200]}): check {plan.name} and " \
               f"{plan.name}{OLD_SUFFIX}; volumes are untouched"
    running = old.status == "running" or not attrs["State"].get("Running")
    if not problems:
        return f"old container {plan.name} restored and started with its data"
    where = f"the old container is {old.name}, {'running' if old.status == 'running' else 'NOT running'}"
    return f"ROLLBACK {'INCOMPLETE' if not running else 'partial'} ({'; '.join(problems)}): {where}, its volumes " \
           "are untouched"


def resume_parked(client, name: str) -> str | None:
    """An interrupted recreate left only the parked old container: give it its name back and start it, as the
    rollback would have. Returns what was done, or None when `name` exists (nothing to resume)."""
    try:
        client.containers.get(name)
        return None
    except NotFound:
        pass
    old = parked(client, name)
    if old is None:
        return None
    client.api.rename(old.id, name)
    old.reload()
    if old.status != "running":
        old.start()
    return f"{name}{OLD_SUFFIX}, left by an interrupted run, renamed back to {name} and started"
