"""Tagged stand-ins for Orthanc's Docker images, built from the lab's application image (Debian's Orthanc 1.10.1).

- ``jodogne`` style: configured by JSON files in /etc/orthanc, tags are Orthanc versions.
- ``orthancteam`` style: configured by ``ORTHANC__*`` variables merged over /etc/orthanc/*.json by an entrypoint,
  tags are bundle versions. A small Python entrypoint stands in for the real image's generator.
- "Old" variants answer ``Orthanc --version`` with 1.5.7 (before the CVE-2025-0896 fix) and run the real binary
  otherwise, with the wrapper the package stand-in uses (oldpackage.py).
- ``team-broken`` answers ``--version`` with 1.10.1 but its Orthanc never starts: the rollback case.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath
from typing import Callable, NamedTuple

import docker
from docker.errors import APIError, ImageNotFound

from . import image
from .errors import LabError
from .oldpackage import REAL_BINARY, WRAPPER

RECIPE_LABEL = "orthanc-harden.lab-recipe"
JODOGNE_REPO = "orthanc-harden-lab/jodogne"
TEAM_REPO = "orthanc-harden-lab/orthancteam"
# Local repository -> repository path in a registry, named like the public images they stand in for.
REGISTRY_REPOS = {JODOGNE_REPO: "jodogne/orthanc", TEAM_REPO: "orthancteam/orthanc"}

ENTRYPOINT = '''"""orthanc-harden lab: stand-in for the orthancteam/osimis configuration generator."""
import glob, json, os, re

config = {"RemoteAccessAllowed": True, "AuthenticationEnabled": True,
          "StorageDirectory": "/var/lib/orthanc/db", "IndexDirectory": "/var/lib/orthanc/db"}
# Orthanc accepts // and /* */ comments; drop them outside strings, keeping the strings themselves.
comments = re.compile(r'("(?:\\\\.|[^"\\\\])*")|//[^\\n]*|/\\*.*?\\*/', re.S)
for path in sorted(glob.glob("/etc/orthanc/*.json")):
    with open(path, encoding="utf-8") as handle:
        config.update(json.loads(comments.sub(lambda m: m.group(1) or "", handle.read())))
for name, raw in sorted(os.environ.items()):
    rest = name[len("ORTHANC__"):]
    if name.startswith("ORTHANC__") and rest and "__" not in rest:
        key = "".join(word.capitalize() for word in rest.split("_"))
        try:
            config[key] = json.loads(raw)
        except ValueError:
            config[key] = raw
# The result may hold RegisteredUsers: readable by root only.
fd = os.open("/tmp/orthanc.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as out:
    json.dump(config, out)
os.execv("/usr/sbin/Orthanc", ["/usr/sbin/Orthanc", "/tmp/orthanc.json"])
'''
BROKEN = 'import sys\nprint("orthanc-harden-lab: broken on purpose", flush=True)\nsys.exit(1)\n'

OLD_DF = f"""FROM {{base}}
RUN mkdir -p {PurePosixPath(REAL_BINARY).parent} && mv /usr/sbin/Orthanc {REAL_BINARY}
COPY wrapper /usr/sbin/Orthanc
RUN chmod 755 /usr/sbin/Orthanc
"""
# ENTRYPOINT also clears the CMD ["/etc/orthanc/"] inherited from the jodogne-style base, as the real image has none.
TEAM_DF = """FROM {base}
# The real images ship no JSON in /etc/orthanc: their configuration comes from the environment.
RUN rm -f /etc/orthanc/*.json
COPY entrypoint.py /docker-entrypoint.py
ENV ORTHANC__NAME=orthancteam-standin
LABEL org.opencontainers.image.vendor=orthanc-harden-lab org.opencontainers.image.title="orthancteam/orthanc stand-in"
ENTRYPOINT ["python3", "/docker-entrypoint.py"]
"""
BROKEN_DF = """FROM {base}
COPY entrypoint.py /docker-entrypoint.py
"""


class Recipe(NamedTuple):
    repository: str
    tag: str
    base: str  # "app" or an earlier key
    dockerfile: str | None  # None: the base retagged as it is
    files: dict[str, str]


# In build order: a recipe's base comes before it.
RECIPES = {
    "jodogne-old": Recipe(JODOGNE_REPO, "1.5.7", "app", OLD_DF, {"wrapper": WRAPPER}),
    "jodogne-fixed": Recipe(JODOGNE_REPO, "1.10.1", "app", None, {}),
    "team-old": Recipe(TEAM_REPO, "19.11.0", "jodogne-old", TEAM_DF, {"entrypoint.py": ENTRYPOINT}),
    "team-fixed": Recipe(TEAM_REPO, "24.1.2", "app", TEAM_DF, {"entrypoint.py": ENTRYPOINT}),
    "team-broken": Recipe(TEAM_REPO, "24.9.9-broken", "team-fixed", BROKEN_DF, {"entrypoint.py": BROKEN}),
}


def _get(client: docker.DockerClient, tag: str):
    try:
        return client.images.get(tag)
    except ImageNotFound:
        return None


def _digest(base_id: str, dockerfile: str, files: dict[str, str]) -> str:
    # The base's id is in the hash: a base tag such as jodogne:1.5.7 stays put while its image is rebuilt.
    parts = [base_id, dockerfile, *(f"{name}\0{text}" for name, text in sorted(files.items()))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def build_all(client: docker.DockerClient, say: Callable[[str], None],
              only: tuple[str, ...] | None = None) -> dict[str, str]:
    """Build what is missing or stale; returns {"jodogne-old": local tag, ..., "team-broken": local tag}
    (`only`: these keys, whose bases come before them in RECIPES)."""
    tags = {"app": image.ensure_images(client, say)["app"]}
    for key, recipe in RECIPES.items():
        if only is not None and key not in only:
            continue
        tag = f"{recipe.repository}:{recipe.tag}"
        base = client.images.get(tags[recipe.base])
        current = _get(client, tag)
        if recipe.dockerfile is None:
            if current is None or current.id != base.id:
                say(f"tagging {tags[recipe.base]} as {tag}")
                base.tag(recipe.repository, recipe.tag)
        else:
            dockerfile = recipe.dockerfile.format(base=tags[recipe.base])
            digest = _digest(base.id, dockerfile, recipe.files)
            if current is None or (current.labels or {}).get(RECIPE_LABEL) != digest:
                say(f"building the stand-in image {tag}")
                image._build(client, tag, dockerfile + f"LABEL {RECIPE_LABEL}={digest}\n", recipe.files, key)
        tags[key] = tag
    del tags["app"]
    return tags


def push_all(client: docker.DockerClient, registry: str, say: Callable[[str], None]) -> dict[str, str]:
    """Build what is missing, tag every stand-in as ``{registry}/jodogne/orthanc:TAG`` or
    ``{registry}/orthancteam/orthanc:TAG`` and push it; returns {key: registry reference}."""
    refs = {}
    for key, tag in build_all(client, say).items():
        repository, version = tag.rsplit(":", 1)
        target = f"{registry}/{REGISTRY_REPOS[repository]}"
        client.images.get(tag).tag(target, version)
        say(f"pushing {target}:{version}")
        try:
            for chunk in client.images.push(target, version, stream=True, decode=True):
                if "error" in chunk:
                    raise LabError(f"pushing {target}:{version} failed: {chunk['error']}")
        except APIError as err:
            raise LabError(f"pushing {target}:{version} failed: {err.explanation or err}") from None
        refs[key] = f"{target}:{version}"
    return refs
