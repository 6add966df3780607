"""Issue #21: deploy/runner/Dockerfile builds with the lab's Docker engine on the lab's own Debian base (built by
debootstrap, no registry), installs exactly its pinned package set, and runs orthanc-harden as a non-root user.

Where this runs, no image registry is reachable and a build container cannot verify PyPI's TLS certificate (the
control node reaches PyPI through a proxy whose CA only the control node trusts), so the pinned wheels are
downloaded on the control node with pip and handed to the build as its wheelhouse, with `PIP_NO_INDEX=1`: the
same path as a site without a package index. Debian's packages come from the Debian mirror, as in the lab build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest
from docker.errors import BuildError, DockerException

from orthanc_harden import __version__
from orthanc_harden.lab import image
from orthanc_harden.lab.errors import LabError
from tests.conftest import ROOT, unavailable

pytestmark = pytest.mark.lab

REQUIREMENTS = ROOT / "deploy" / "runner" / "requirements.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-").replace(".", "-")] = version
    return pins


def _context(tmp_path: Path) -> Path:
    """The build context as `docker build -f deploy/runner/Dockerfile .` sends it (.dockerignore applied by hand:
    only what the image copies), with the pinned wheels in the wheelhouse."""
    context = tmp_path / "context"
    runner = context / "deploy" / "runner"
    runner.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(ROOT / "orthanc_harden", context / "orthanc_harden",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "deploy" / "runner", runner, dirs_exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                           "-r", str(REQUIREMENTS), "-d", str(runner / "wheelhouse")],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        unavailable(f"pip cannot download the runner's pinned wheels here: {proc.stderr.strip()[-300:]}")
    return context


@pytest.fixture(scope="module")
def runner_image(tmp_path_factory):
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as err:
        unavailable(f"no Docker engine: {err}")
    try:
        base = image.rootfs_image(client, lambda line: None)
    except LabError as err:
        unavailable(f"the lab's Debian base image cannot be built here: {err}")
    context = _context(tmp_path_factory.mktemp("runner"))
    tag = f"orthanc-harden-test/shard-runner:{uuid.uuid4().hex[:8]}"
    try:
        client.images.build(path=str(context), dockerfile="deploy/runner/Dockerfile", tag=tag, rm=True,
                            forcerm=True, network_mode="bridge", buildargs={"BASE": base, "PIP_NO_INDEX": "1"})
    except BuildError as err:
        log = "".join(str(chunk.get("stream", "")) for chunk in err.build_log)
        pytest.fail(f"deploy/runner/Dockerfile does not build: {err.msg}\n{log[-3000:]}")
    yield client, tag
    client.images.remove(tag, force=True)
    client.close()


def _run(runner_image, *command: str) -> tuple[int, str]:
    client, tag = runner_image
    container = client.containers.run(tag, list(command), detach=True, network_mode="none")
    try:
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


def test_the_runner_runs_orthanc_harden_unprivileged(runner_image):
    assert _run(runner_image, "orthanc-harden", "--version") == (0, f"orthanc-harden {__version__}\n")
    assert _run(runner_image, "id", "-u") == (0, "10001\n")
    code, output = _run(runner_image, "orthanc-harden", "report", "merge", "--help")
    assert code == 0 and "--allow-mixed" in output
    code, output = _run(runner_image, "orthanc-harden", "audit", "fleet.py", "--shard", "4/3")
    assert code == 2 and "I must be between 1 and 3" in output


def test_the_runner_holds_exactly_the_pinned_packages(runner_image):
    code, output = _run(runner_image, "pip", "list", "--format=freeze")
    assert code == 0, output
    installed = {}
    for line in output.splitlines():
        name, _, version = line.partition("==")
        installed[name.lower().replace("_", "-").replace(".", "-")] = version
    assert installed.pop("orthanc-harden") == __version__
    installed.pop("pip")  # the venv's own installer, Debian's
    assert installed == _pins()
    assert _run(runner_image, "pip", "check")[0] == 0
