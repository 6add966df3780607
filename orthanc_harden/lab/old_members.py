"""Lab members below 1.5.8, so that a remediation shows the CVE's own fix, the upgrade: a package host running the
stand-in old package (``oldpackage``) with apt pointed at a local repository of Debian's real one, and an Orthanc
container from a jodogne-style 1.5.7 image, with the fixed image ready for the recreate.

The container images are tagged as if they came from a private mirror at ``127.0.0.1:PORT`` (a lab port where
nothing listens): the tool then asks that address, and only that one, whether a newer image exists, finds no
registry and uses the engine's copy. No request leaves the machine.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
from pathlib import Path
from typing import Callable

from . import app_images, image, oldpackage, state
from .errors import LabError

OLD_TAG, FIXED_TAG = "1.5.7", "1.10.1"


def mirror_images(client, port: int, say: Callable[[str], None]) -> dict[str, str]:
    """{"old": reference, "fixed": reference} of the jodogne-style images under the lab's mirror name."""
    built = app_images.build_all(client, say, only=("jodogne-old", "jodogne-fixed"))
    repository = f"127.0.0.1:{port}/jodogne/orthanc"
    refs = {}
    for key, local, tag in (("old", built["jodogne-old"], OLD_TAG), ("fixed", built["jodogne-fixed"], FIXED_TAG)):
        image = client.images.get(local)
        if f"{repository}:{tag}" not in image.tags:
            image.tag(repository, tag)
        refs[key] = f"{repository}:{tag}"
    return refs


def _cache() -> Path:
    """Beside the labs' own state directories: built once, shared by every lab of this user."""
    override = os.environ.get("ORTHANC_HARDEN_LAB_DIR")
    return (Path(override) if override else state.lab_dir(state.DEFAULT_LAB).parent) / "old-package"


def plant_package(container, say: Callable[[str], None]) -> str:
    """Downgrade a fresh lab package host to the stand-in (Debian's real package in a local apt repository is the
    upgrade); returns the stand-in's version."""
    work = _cache()
    real = _debian_package(container, work / "debian")
    (work / "standin").mkdir(parents=True, exist_ok=True)
    standin = oldpackage.build_standin(real, work / "standin")
    repo = oldpackage.build_repository([real], work / "repo")
    say(f"planting Orthanc {oldpackage.STANDIN_VERSION} on {container.name}")
    oldpackage.plant(container, standin, repo)
    return oldpackage.STANDIN_VERSION


def _codename() -> str | None:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return None
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return fields.get("VERSION_CODENAME", "").strip('"') or None


def _debian_package(container, directory: Path) -> Path:
    """Debian's orthanc .deb of the lab's release: from the control node's apt when it runs that release, otherwise
    (an Ubuntu control node would offer a package built for Ubuntu) downloaded inside the fresh lab host."""
    found = sorted(directory.glob("orthanc_*.deb"))
    if found:
        return found[-1]
    if _codename() == image.SUITE:
        try:
            return oldpackage.fetch_debian_package(directory)
        except LabError:
            pass
    return _download_in(container, directory)


def _download_in(container, directory: Path) -> Path:
    script = ("set -e; d=$(mktemp -d); cd \"$d\"; apt-get update -qq; apt-get download -qq orthanc; "
              "rm -rf /var/lib/apt/lists/*; ls \"$d\"/orthanc_*.deb")
    code, output = container.exec_run(["bash", "-c", script])
    text = output.decode(errors="replace").strip()
    if code != 0 or not text.endswith(".deb"):
        raise LabError(f"{container.name}: downloading Debian's orthanc package failed: {text[-300:]}")
    path = text.splitlines()[-1]
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.getmembers()[0]
        data = tar.extractfile(member).read()
    container.exec_run(["rm", "-rf", posixpath.dirname(path)])
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / posixpath.basename(path)
    target.write_bytes(data)
    return target
