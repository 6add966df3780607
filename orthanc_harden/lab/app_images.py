"""Tagged stand-ins for Orthanc's Docker images, built from the lab's application image (Debian's Orthanc 1.10.1).

- ``jodogne`` style: configured by JSON files in /etc/orthanc, tags are Orthanc versions.
- ``orthancteam`` style: configured by ``ORTHANC__*`` variables merged over /etc/orthanc/*.json by an entrypoint,
  tags are bundle versions. A small Python entrypoint stands in for the real image's generator.
- "Old" variants answer ``Orthanc --version`` with 1.5.7 (before the CVE-2025-0896 fix) and run the real binary.
- ``team-broken`` answers ``--version`` with 1.10.1 but its Orthanc never starts: the rollback case.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import docker
from docker.errors import APIError, ImageNotFound

from . import image
from .errors import LabError

RECIPE_LABEL = "orthanc-harden.lab-recipe"
OLD_VERSION = "1.5.7"
WRAPPER = f"""#!/bin/bash
# orthanc-harden lab: stand-in for an Orthanc release older than 1.5.8 (CVE-2025-0896).
if [ "$1" = "--version" ]; then echo "$0 {OLD_VERSION}"; exit 0; fi
exec -a "$0" /usr/lib/orthanc-harden-lab/Orthanc "$@"
"""
ENTRYPOINT = '''"""orthanc-harden lab: stand-in for the orthancteam/osimis configuration generator."""
import glob, json, os, re

config = {"RemoteAccessAllowed": True, "AuthenticationEnabled": True,
          "StorageDirectory": "/var/lib/orthanc/db", "IndexDirectory": "/var/lib/orthanc/db"}
comments = re.compile(r'("(?:\\\\.|[^"\\\\])*")|//[^\\n]*|/\\*.*?\\*/', re.S)
for path in sorted(glob.glob("/etc/orthanc/*.json")):
    with open(path, encoding="utf-8") as handle:
        config.update(json.loads(comments.sub(lambda m: m.group(1) or "", handle.read())))
for name, raw in sorted(os.environ.items()):
    if name.startswith("ORTHANC__") and "__" not in name[len("ORTHANC__"):]:
        key = "".join(word.capitalize() for word in name[len("ORTHANC__"):].split("_"))
        try:
            config[key] = json.loads(raw)
        except ValueError:
            config[key] = raw
fd = os.open("/tmp/orthanc.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as out:
    json.dump(config, out)
os.execv("/usr/sbin/Orthanc", ["/usr/sbin/Orthanc", "/tmp/orthanc.json"])
'''
BROKEN = 'import sys\nprint("orthanc-harden-lab: broken on purpose", flush=True)\nsys.exit(1)\n'

OLD = """FROM {base}
RUN mkdir -p /usr/lib/orthanc-harden-lab && mv /usr/sbin/Orthanc /usr/lib/orthanc-harden-lab/Orthanc
COPY wrapper /usr/sbin/Orthanc
RUN chmod 755 /usr/sbin/Orthanc
"""
TEAM = """FROM {base}
# The real images ship no JSON in /etc/orthanc: their configuration comes from the environment.
RUN rm -f /etc/orthanc/*.json
COPY entrypoint.py /docker-entrypoint.py
ENV ORTHANC__NAME=orthancteam-standin
LABEL org.opencontainers.image.vendor=orthanc-harden-lab
ENTRYPOINT ["python3", "/docker-entrypoint.py"]
"""
BROKEN_DF = """FROM {base}
COPY entrypoint.py /docker-entrypoint.py
"""

# key: (repository, tag, dockerfile, base key or "app", files)
RECIPES = {
    "jodogne-old": ("orthanc-harden-lab/jodogne", OLD_VERSION, OLD, "app", {"wrapper": WRAPPER}),
    "jodogne-fixed": ("orthanc-harden-lab/jodogne", "1.10.1", "FROM {base}\n", "app", {}),
    "team-old": ("orthanc-harden-lab/orthancteam", "19.11.0", TEAM, "jodogne-old", {"entrypoint.py": ENTRYPOINT}),
    "team-fixed": ("orthanc-harden-lab/orthancteam", "24.1.2", TEAM, "app", {"entrypoint.py": ENTRYPOINT}),
    "team-broken": ("orthanc-harden-lab/orthancteam", "24.9.9-broken", BROKEN_DF, "team-fixed",
                    {"entrypoint.py": BROKEN}),
}
REGISTRY_REPOS = {"orthanc-harden-lab/jodogne": "jodogne/orthanc", "orthanc-harden-lab/orthancteam":
                  "orthancteam/orthanc"}


def _current(client: docker.DockerClient, tag: str, recipe: str) -> bool:
    try:
        return (client.images.get(tag).labels or {}).get(RECIPE_LABEL) == recipe
    except ImageNotFound:
        return False


def build_all(client: docker.DockerClient, say: Callable[[str], None]) -> dict[str, str]:
    """Build what is missing or stale; returns {key: local tag}."""
    tags = {"app": image.ensure_images(client, say)["app"]}
    for key, (repository, version, dockerfile, base, files) in RECIPES.items():
        text = dockerfile.format(base=tags[base]) + f"LABEL {RECIPE_LABEL}=RECIPE\n"
        recipe = hashlib.sha256("\0".join([text, *sorted(files.values())]).encode()).hexdigest()[:12]
        tag = f"{repository}:{version}"
        if not _current(client, tag, recipe):
            say(f"building the stand-in image {tag}")
            image._build(client, tag, text.replace("=RECIPE", f"={recipe}"), files, key)
        tags[key] = tag
    del tags["app"]
    return tags


def push_all(client: docker.DockerClient, registry: str, say: Callable[[str], None]) -> dict[str, str]:
    """Tag every stand-in as ``{registry}/jodogne/orthanc:TAG`` or ``.../orthancteam/orthanc:TAG`` and push it."""
    refs = {}
    for key, tag in build_all(client, say).items():
        repository, version = tag.rsplit(":", 1)
        target = f"{registry}/{REGISTRY_REPOS[repository]}"
        client.images.get(tag).tag(target, version)
        try:
            for chunk in client.images.push(target, version, stream=True, decode=True):
                if "error" in chunk:
                    raise LabError(f"pushing {target}:{version} failed: {chunk['error']}")
        except APIError as err:
            raise LabError(f"pushing {target}:{version} failed: {err.explanation or err}") from None
        refs[key] = f"{target}:{version}"
    return refs
