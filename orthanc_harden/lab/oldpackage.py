"""A vulnerable, package-installed Orthanc for the lab: a stand-in for a release before 1.5.8 and a local apt
repository holding Debian's real package, so the upgrade path runs for real without any outside repository.

The stand-in is Debian's own orthanc .deb relabelled with an old version: its ``Orthanc --version`` answers with
that version and runs Debian's binary otherwise. Its packaged ``orthanc.json`` differs from Debian's by one comment,
so an upgrade meets an administrator-edited conffile that the new package also changed (dpkg's hard case).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from .errors import LabError

STANDIN_VERSION = "1.5.7+lab-1"
REAL_BINARY = "/usr/lib/orthanc-harden-lab/Orthanc"
REPO_DIR = "/srv/orthanc-harden-repo"
WRAPPER = f"""#!/bin/bash
# orthanc-harden lab: stand-in for an Orthanc release older than 1.5.8 (CVE-2025-0896).
if [ "$1" = "--version" ]; then echo "$0 {STANDIN_VERSION.split('+')[0]}"; exit 0; fi
exec -a "$0" {REAL_BINARY} "$@"
"""


def _run(argv: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv[:3])} failed: {(result.stderr or result.stdout).strip()[-300:]}")
    return result.stdout


def fetch_debian_package(workdir: Path, package: str = "orthanc") -> Path:
    """Debian's real .deb from the control node's apt sources (bookworm, like the lab image)."""
    workdir.mkdir(parents=True, exist_ok=True)
    found = sorted(workdir.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    try:
        _run(["apt-get", "download", package], cwd=workdir)
    except LabError:
        _run(["apt-get", "update", "-q"])
        _run(["apt-get", "download", package], cwd=workdir)
    found = sorted(workdir.glob(f"{package}_*.deb"))
    if not found:
        raise LabError(f"apt-get download {package} produced no .deb")
    return found[-1]


def build_standin(real_deb: Path, workdir: Path, version: str = STANDIN_VERSION) -> Path:
    out = workdir / f"orthanc_{version}_standin.deb"
    if out.exists():
        return out
    tree = workdir / "standin-tree"
    shutil.rmtree(tree, ignore_errors=True)
    _run(["dpkg-deb", "-R", str(real_deb), str(tree)])
    control = tree / "DEBIAN" / "control"
    lines = [f"Version: {version}" if line.startswith("Version:") else line
             for line in control.read_text().splitlines()]
    control.write_text("\n".join(lines) + "\n")
    binary = tree / "usr/sbin/Orthanc"
    real = tree / REAL_BINARY.lstrip("/")
    real.parent.mkdir(parents=True, exist_ok=True)
    binary.rename(real)
    binary.write_text(WRAPPER)
    binary.chmod(0o755)
    conffile = tree / "etc/orthanc/orthanc.json"
    conffile.write_text(conffile.read_text() + f"// packaged by the orthanc-harden lab stand-in {version}\n")
    sums = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and "DEBIAN" not in p.parts):
        relative = path.relative_to(tree).as_posix()
        if not relative.startswith("etc/"):
            sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {relative}")
    (tree / "DEBIAN" / "md5sums").write_text("\n".join(sums) + "\n")
    _run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(tree), str(out)])
    shutil.rmtree(tree, ignore_errors=True)
    return out


def build_repository(debs: list[Path], repo: Path) -> Path:
    """A flat apt repository (``deb [trusted=yes] file:DIR ./``) with a Packages index."""
    repo.mkdir(parents=True, exist_ok=True)
    stanzas = []
    for deb in debs:
        target = repo / deb.name
        if not target.exists():
            shutil.copy2(deb, target)
        data = target.read_bytes()
        control = _run(["dpkg-deb", "-f", str(target)]).rstrip("\n")
        stanzas.append(f"{control}\nFilename: ./{target.name}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    (repo / "Packages").write_text("\n".join(stanzas))
    return repo


PLANT_SCRIPT = f"""set -e
export DEBIAN_FRONTEND=noninteractive
dpkg -i --force-downgrade --force-confnew /tmp/orthanc-standin.deb
rm -f /tmp/orthanc-standin.deb
conf=/etc/orthanc/orthanc.json
# The administrator's edits: a name, and the CVE-2025-0896 state made explicit.
sed -i 's|"Name" : "Orthanc",|"Name" : "EDITED-BY-ADMIN",|' "$conf"
sed -i 's|"RemoteAccessAllowed" : false,|"RemoteAccessAllowed" : true,\\n  "AuthenticationEnabled" : false,|' "$conf"
grep -q '"Name" : "EDITED-BY-ADMIN",' "$conf"
grep -q '^  "AuthenticationEnabled" : false,$' "$conf"
# Only the lab's repository, with an index older than any cache time: the first upgrade refreshes it.
mkdir -p /etc/apt/sources-disabled
mv /etc/apt/sources.list /etc/apt/sources-disabled/ 2>/dev/null || true
echo 'deb [trusted=yes] file:{REPO_DIR} ./' > /etc/apt/sources.list.d/orthanc-harden-lab.list
rm -f /var/lib/apt/periodic/update-success-stamp
systemctl restart orthanc.service
"""


def plant(container, standin: Path, repo: Path) -> None:
    """Downgrade a lab package host to the stand-in, edit its configuration like an admin, point apt at `repo`."""
    import io
    import tarfile
    import time

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(standin), arcname="tmp/orthanc-standin.deb")
        for path in sorted(repo.iterdir()):
            tar.add(str(path), arcname=f"{REPO_DIR.lstrip('/')}/{path.name}")
    container.put_archive("/", buf.getvalue())
    code, output = container.exec_run(["bash", "-c", PLANT_SCRIPT])
    if code != 0:
        raise LabError(f"{container.name}: planting the old Orthanc failed: {output.decode(errors='replace')[-400:]}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code, _ = container.exec_run(["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8042/system"])
        if code == 0:
            return
        time.sleep(1)
    raise LabError(f"{container.name}: Orthanc did not answer after planting the old version")
