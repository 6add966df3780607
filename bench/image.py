"""The bench host image: the lab's package-host image, planted with a pre-1.5.8 Orthanc, built once and cached.

Why not lighter than systemd: orthanc-harden finds Orthanc through its systemd unit (ExecStart, drop-ins) and
restarts it with systemctl, and an Ansible sysadmin restarts it with the service module. A supervisor without
systemd would leave both tools nothing to remediate, so the bench keeps the lab's systemd hosts (idle systemd,
journald, sshd and Orthanc: tens of MB each) and adds only what a benchmark needs:

- the lab's stand-in for Orthanc 1.5.7 (Debian's 1.10.1 relabelled) and a local apt repository holding the real
  1.10.1, exactly as the upgrade tests plant them, so both tools really upgrade over apt without any network;
- python3-apt, which Ansible's apt module needs on the host (a real Debian server has it; the minimal lab image
  does not, and Ansible would otherwise try to install it first);
- sshd at LogLevel VERBOSE: it logs "Starting session:" for every command, which is how SSH commands are counted.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Callable

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from orthanc_harden.lab import image as lab_image
from orthanc_harden.lab import oldpackage

from . import LABEL

REPO = "bench-orthanc-harden/host"
CACHE = Path("/var/tmp/orthanc-harden-bench")
APT_FOR_ANSIBLE = ("python3-apt", "python-apt-common", "distro-info-data")
SSHD_CONF = "/etc/ssh/sshd_config.d/orthanc-harden-bench.conf"
SUDO_USER = "deploy"

# The lab's planting script, minus its final restart: at build time no systemd runs; the container's boot
# starts the planted Orthanc. Checked, so a change in the lab's script fails here instead of silently.
_RESTART = "systemctl restart orthanc.service\n"
if not oldpackage.PLANT_SCRIPT.endswith(_RESTART):
    raise RuntimeError("orthanc_harden.lab.oldpackage.PLANT_SCRIPT changed: update bench/image.py")
PLANT = oldpackage.PLANT_SCRIPT[: -len(_RESTART)]

SETUP = f"""set -e
# Maintainer scripts must not start daemons inside the build.
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
dpkg -i /tmp/bench-debs/*.deb
{PLANT}
rm -f /usr/sbin/policy-rc.d
rm -rf /tmp/bench-debs /tmp/bench-setup.sh
printf '# orthanc-harden bench: log every session (commands per host)\\nLogLevel VERBOSE\\n' > {SSHD_CONF}
# The sudo login some hosts are reached by (bench/hosts.py writes its key on those hosts only).
useradd -m -s /bin/bash {SUDO_USER}
echo '{SUDO_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{SUDO_USER}
chmod 0440 /etc/sudoers.d/{SUDO_USER}
visudo -cq
"""

DOCKERFILE = """# orthanc-harden bench host: lab host, Orthanc 1.5.7 stand-in, auth off, python3-apt, sshd VERBOSE.
FROM {base}
COPY root/ /
RUN sh /tmp/bench-setup.sh
"""


def _debs(say: Callable[[str], None]) -> dict[str, Path]:
    """Debian's packages, downloaded once to the control node's cache with apt (the lab does the same)."""
    work = CACHE / "debs"
    say(f"bench: packages for the host image in {work}")
    # Separate directories: fetch_debian_package takes the last orthanc_*.deb of its directory, and the
    # stand-in (orthanc_1.5.7...) sorts after Debian's orthanc_1.10.1... there.
    real = oldpackage.fetch_debian_package(work / "debian", "orthanc")
    (work / "standin").mkdir(parents=True, exist_ok=True)
    found = {"standin": oldpackage.build_standin(real, work / "standin")}
    repo = oldpackage.build_repository([real], work / "repo")
    for item in sorted(repo.iterdir()):
        found[f"repo/{item.name}"] = item
    for name in APT_FOR_ANSIBLE:
        found[f"apt/{name}"] = oldpackage.fetch_debian_package(work / "debian", name)
    return found


def _context(dockerfile: str, files: dict[str, Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))

        add("Dockerfile", dockerfile.encode())
        add("root/tmp/bench-setup.sh", SETUP.encode())
        add("root/tmp/orthanc-standin.deb", files["standin"].read_bytes())
        for key, path in files.items():
            if key.startswith("repo/"):
                add(f"root/{oldpackage.REPO_DIR.lstrip('/')}/{path.name}", path.read_bytes())
            elif key.startswith("apt/"):
                add(f"root/tmp/bench-debs/{path.name}", path.read_bytes())
    return buf.getvalue()


def ensure(client: docker.DockerClient, say: Callable[[str], None]) -> str:
    """The bench host image's tag, built when its recipe (base image, script, packages) changed."""
    base = lab_image.ensure_images(client, say)["host"]
    files = _debs(say)
    dockerfile = DOCKERFILE.format(base=base)
    recipe = hashlib.sha256()
    for part in (client.images.get(base).id, dockerfile, SETUP):
        recipe.update(part.encode() + b"\0")
    for key in sorted(files):
        recipe.update(key.encode() + hashlib.sha256(files[key].read_bytes()).digest())
    tag = f"{REPO}:{recipe.hexdigest()[:12]}"
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    say(f"bench: building {tag} (once)")
    try:
        # Everything is in the context: the build needs no network at all.
        client.images.build(fileobj=io.BytesIO(_context(dockerfile, files)), custom_context=True, tag=tag,
                            rm=True, forcerm=True, labels={LABEL: "1"}, network_mode="none")
    except (BuildError, APIError) as err:
        raise RuntimeError(f"building {tag} failed: {err}") from None
    return tag
