"""Lab members below 1.5.8, so that a remediation shows the CVE's own fix, the upgrade: a package host running the
stand-in old package (``oldpackage``) with apt pointed at a local repository of Debian's real one, and an Orthanc
container from a jodogne-style 1.5.7 image, with the fixed image ready for the recreate.

The container images are tagged as if they came from a private mirror at ``127.0.0.1:PORT`` (a lab port where
nothing listens): the tool then asks that address, and only that one, whether a newer image exists, finds no
registry and uses the engine's copy. No request leaves the machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from . import app_images, oldpackage, state

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
    real = oldpackage.fetch_debian_package(work / "debian")
    (work / "standin").mkdir(parents=True, exist_ok=True)
    standin = oldpackage.build_standin(real, work / "standin")
    repo = oldpackage.build_repository([real], work / "repo")
    say(f"planting Orthanc {oldpackage.STANDIN_VERSION} on {container.name}")
    oldpackage.plant(container, standin, repo)
    return oldpackage.STANDIN_VERSION
