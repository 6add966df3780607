"""Build the lab's images once and cache them by a hash of their recipe.

No registry is reachable where this runs, so the base comes from a debootstrap rootfs and `docker import`;
Debian's packages (debootstrap cannot resolve Orthanc's virtual dependencies) go in with apt in a build layer.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from importlib import resources
from pathlib import Path
from typing import Callable

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from . import DEFAULT_MIRROR, engine
from .errors import LabError

SUITE = "bookworm"
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "orthanc", "curl", "ca-certificates",
    "ufw", "nftables", "iptables", "iproute2", "procps", "python3", "sudo",
]
ROOTFS_REPO = "orthanc-harden-lab/rootfs"
HOST_REPO = "orthanc-harden-lab/host"
APP_REPO = "orthanc-harden-lab/orthanc"
IMAGE_LABEL = "orthanc-harden.lab-image"


def _recipe_file(name: str) -> str:
    return resources.files("orthanc_harden.lab").joinpath("files", name).read_text()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def _exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def _debootstrap(root: Path, mirror: str, say: Callable[[str], None]) -> None:
    if shutil.which("debootstrap") is None:
        if os.geteuid() == 0 and Path("/etc/debian_version").exists():
            engine.apt_install(["debootstrap"], say)
        else:
            raise LabError("debootstrap is not installed and this machine is not Debian/Ubuntu as root")
    say(f"building the lab rootfs with debootstrap ({SUITE}, {mirror}); this happens once")
    argv = ["debootstrap", "--variant=minbase", SUITE, str(root), mirror]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise LabError("debootstrap did not finish within 30 minutes") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith(("E:", "W:"))]
        raise LabError(f"debootstrap failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")


def _import(client: docker.DockerClient, root: Path, tag: str) -> None:
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    repo, _, version = tag.partition(":")
    try:
        client.api.import_image(src=tar.stdout, repository=repo, tag=version, stream_src=True,
                                changes=[f"LABEL {IMAGE_LABEL}=rootfs"])
    except APIError as err:
        raise LabError(f"docker import of the lab rootfs failed: {err.explanation or err}") from None
    finally:
        tar.stdout.close()
        tar.wait(timeout=600)
    if not _exists(client, tag):
        raise LabError("docker import of the lab rootfs produced no image")


def _build(client: docker.DockerClient, tag: str, dockerfile: str, files: dict[str, str], kind: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in {"Dockerfile": dockerfile, **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    try:
        client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True,
                            labels={IMAGE_LABEL: kind}, network_mode="bridge")
    except BuildError as err:
        tail = [str(chunk.get("stream", "")).strip() for chunk in err.build_log if chunk.get("stream")]
        tail = [line for line in tail if line][-1:] or [str(err)]
        raise LabError(f"building {tag} failed: {err.msg}; last output: {tail[0]}") from None
    except APIError as err:
        raise LabError(f"building {tag} failed: {err.explanation or err}") from None


def rootfs_image(client: docker.DockerClient, say: Callable[[str], None], mirror: str = DEFAULT_MIRROR) -> str:
    """The tag of the debootstrapped Debian base (no registry needed), imported once."""
    rootfs = f"{ROOTFS_REPO}:{SUITE}-{_digest(SUITE, mirror)}"
    if not _exists(client, rootfs):
        workdir = Path(tempfile.mkdtemp(prefix="orthanc-harden-rootfs-", dir="/var/tmp"))
        try:
            _debootstrap(workdir / "rootfs", mirror, say)
            say(f"importing the rootfs as {rootfs}")
            _import(client, workdir / "rootfs", rootfs)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return rootfs


def ensure_images(client: docker.DockerClient, say: Callable[[str], None],
                  mirror: str = DEFAULT_MIRROR) -> dict[str, str]:
    """Return {"host": tag, "app": tag}, building what is missing."""
    rootfs = rootfs_image(client, say, mirror)

    configure = _recipe_file("configure-host.sh")
    host_df = _recipe_file("host.Dockerfile").format(rootfs=rootfs, packages=" ".join(PACKAGES))
    host = f"{HOST_REPO}:{_digest(host_df, configure)}"
    if not _exists(client, host):
        say(f"installing Debian's Orthanc, sshd and firewalls into {host}")
        _build(client, host, host_df, {"configure-host.sh": configure}, "host")

    app_df = _recipe_file("app.Dockerfile").format(host=host)
    app = f"{APP_REPO}:{_digest(app_df)}"
    if not _exists(client, app):
        say(f"building the Orthanc application image {app}")
        _build(client, app, app_df, {}, "orthanc")
    return {"host": host, "app": app}
