"""pyinfra fact: the Orthanc packages of a host, what its repositories offer, and how old its package index is."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from ..versions import sort_key

# Our own stamp for managers that keep none we could read; apt uses Debian's (apt.systemd.daily and pyinfra touch it).
APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"
RPM_STAMP = "/var/lib/orthanc-harden/package-index-stamp"

# Read-only: every query uses the cached index (dnf -C, zypper --no-refresh), so gathering the fact never refreshes;
# apt-cache builds its binary cache in memory rather than writing /var/cache/apt/*.bin (a dry run changes nothing).
_SCRIPT = r"""
nocache="-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache="
installed_names() { awk '$1=="installed"{print $2}' "$1"; }
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
  echo "manager apt" >>"$out"
  dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\n' orthanc 'orthanc-*' 2>/dev/null \
    | awk 'substr($1, 2, 1)=="i"{print "installed", $2, $3}' >>"$out"
  apt-mark $nocache showhold 2>/dev/null | awk '/^orthanc/{print "held", $1}' >>"$out"
  names=$(installed_names "$out")
  if [ -n "$names" ]; then
    apt-cache $nocache policy $names 2>/dev/null \
      | awk '/^[^ ]/{p=$1; sub(/:$/, "", p)} /^  Candidate:/{print "candidate", p, $2}' >>"$out"
    apt-cache $nocache madison orthanc 2>/dev/null \
      | awk -F'|' '$3 ~ /Packages/{gsub(/ /, "", $2); print "available orthanc", $2}' >>"$out"
  fi
  stamp=@APT_STAMP@
elif command -v rpm >/dev/null 2>&1 && { command -v dnf || command -v yum || command -v zypper; } >/dev/null 2>&1; then
  rpm -qa --qf '%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}\n' 'orthanc' 'orthanc-*' \
    | awk '{sub(/^0:/, "", $2); print "installed", $1, $2}' >>"$out"
  names=$(installed_names "$out")
  if command -v dnf >/dev/null 2>&1; then
    echo "manager dnf" >>"$out"
    [ -n "$names" ] && dnf -C -q repoquery --qf '%{name} %{evr}\n' $names 2>/dev/null \
      | awk 'NF==2{sub(/^0:/, "", $2); print "available", $1, $2}' >>"$out"
    dnf -q versionlock list 2>/dev/null | sed -n 's/^\(orthanc[a-z0-9-]*\)-[0-9]*:.*/held \1/p' >>"$out"
  elif command -v yum >/dev/null 2>&1; then
    echo "manager yum" >>"$out"
    [ -n "$names" ] && yum -C -q list available --showduplicates $names 2>/dev/null \
      | awk 'NF==3{n=$1; sub(/\.[^.]*$/, "", n); v=$2; sub(/^0:/, "", v); print "available", n, v}' >>"$out"
    yum -q versionlock list 2>/dev/null | sed -n 's/^\(orthanc[a-z0-9-]*\)-[0-9]*:.*/held \1/p' >>"$out"
  else
    echo "manager zypper" >>"$out"
    [ -n "$names" ] && zypper -n --no-refresh -q search -s --match-exact -t package $names 2>/dev/null \
      | awk -F'|' 'NF>=6{gsub(/ /, "", $2); gsub(/ /, "", $4); if ($4 != "Version") print "available", $2, $4}' >>"$out"
    zypper -n -q locks 2>/dev/null \
      | awk -F'|' 'NF>=3{gsub(/ /, "", $2); if ($2 ~ /^orthanc/) print "held", $2}' >>"$out"
  fi
  stamp=@RPM_STAMP@
else
  echo "manager none" >>"$out"
  stamp=
fi
if [ -n "$stamp" ] && [ -e "$stamp" ]; then echo "index_mtime $(stat -c %Y "$stamp")" >>"$out"; fi
echo "now $(date +%s)" >>"$out"
cat "$out"
""".replace("@APT_STAMP@", APT_STAMP).replace("@RPM_STAMP@", RPM_STAMP)


class OrthancPackages(FactBase):
    """
    The ``orthanc`` package and its ``orthanc-*`` plugins: the package manager, installed versions, packages held
    back (``apt-mark hold``, dnf/yum versionlock, zypper locks), what the configured repositories offer, and the
    age of the package index in seconds (``None`` when it was never refreshed), all from the cached index.

    .. code:: python

        from orthanc_harden.facts.packages import OrthancPackages
        packages = host.get_fact(OrthancPackages)
        packages["installed"]   # {"orthanc": "1.5.7+lab-1", "orthanc-dicomweb": "1.0+dfsg-1"}
        packages["candidates"]  # {"orthanc": "1.10.1+dfsg-2+deb12u1", ...}: what an upgrade would install
    """

    def command(self) -> str:
        return _SCRIPT

    def process(self, output: list[str]) -> dict:
        return parse(output)


def parse(lines: list[str]) -> dict:
    facts: dict = {"manager": None, "installed": {}, "held": [], "candidates": {}, "available": {},
                   "index_age": None}
    index_mtime = now = None
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        fields = rest.split()
        if kind == "manager" and fields:
            facts["manager"] = None if fields[0] == "none" else fields[0]
        elif kind == "installed" and len(fields) == 2:
            facts["installed"][fields[0]] = fields[1]
        elif kind == "held" and fields:
            facts["held"].append(fields[0])
        elif kind == "candidate" and len(fields) == 2 and fields[1] != "(none)":
            facts["candidates"][fields[0]] = fields[1]
        elif kind == "available" and len(fields) == 2:
            facts["available"].setdefault(fields[0], []).append(fields[1])
        elif kind == "index_mtime" and fields and fields[0].isdigit():
            index_mtime = int(fields[0])
        elif kind == "now" and fields and fields[0].isdigit():
            now = int(fields[0])
    manager = facts["manager"]
    for name, versions in facts["available"].items():
        versions[:] = sorted(set(versions), key=sort_key)
        # apt reports its own candidate (pinning respected); rpm managers install the newest they see.
        if manager != "apt" and name in facts["installed"]:
            facts["candidates"][name] = max(versions + [facts["installed"][name]], key=sort_key)
    facts["held"] = sorted(set(facts["held"]))
    if index_mtime is not None and now is not None:
        facts["index_age"] = max(0, now - index_mtime)
    return facts


# A dry run's view of what the refresh would offer: the index fetched into a temporary directory (no lock, no
# cache file, nothing under /etc or /var/lib/apt changes), then removed.
_OFFERED = r"""
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/lists/partial"
o="-o Dir::State::Lists=$d/lists -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Update::Error-Mode=any"
if ! apt-get update -qq $o >/dev/null 2>"$d/err"; then echo "error $(grep -v '^W:' "$d/err" | tail -n 1)"; exit 0; fi
apt-cache $o policy @NAMES@ 2>/dev/null \
  | awk '/^[^ ]/{p=$1; sub(/:$/, "", p)} /^  Candidate:/{print "candidate", p, $2}'
apt-cache $o madison orthanc 2>/dev/null | awk -F'|' '$3 ~ /Packages/{gsub(/ /, "", $2); print "available orthanc", $2}'
"""


class OrthancPackagesOffered(FactBase):
    """
    apt only: the candidates and versions of ``names`` that the host's repositories offer now, read from an index
    fetched into a temporary directory, so that the host's own index, caches and locks stay as they are (what a dry
    run shows in place of a refresh). ``{"candidates": {...}, "available": {...}}`` or ``{"error": ...}``.

    .. code:: python

        offered = host.get_fact(OrthancPackagesOffered, names=["orthanc"])
    """

    def command(self, names: tuple[str, ...] | list[str]) -> str:
        return _OFFERED.replace("@NAMES@", " ".join(shlex.quote(name) for name in names))

    def process(self, output: list[str]) -> dict:
        errors = [line.partition(" ")[2].strip() for line in output if line.startswith("error")]
        if errors:
            return {"error": errors[0] or "apt-get update failed"}
        found = parse(["manager apt"] + output)
        return {"candidates": found["candidates"], "available": found["available"]}
