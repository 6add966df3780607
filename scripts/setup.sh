#!/usr/bin/env bash
# Set up everything orthanc-harden needs on a fresh Debian/Ubuntu machine, as root: Debian packages,
# a virtualenv with the project and its test extras, and a running Docker engine. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get and the Docker engine need it)"
[ -f /etc/debian_version ] || die "this script supports Debian/Ubuntu; elsewhere install docker, debootstrap, age, pass, gnupg by hand"

apt_packages=(docker.io docker-registry debootstrap age pass gnupg ca-certificates curl strace)
python_bin=$(command -v python3 || true)
[ -n "$python_bin" ] || apt_packages+=(python3 python3-venv)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python_bin=$(command -v python3)
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is required ($python_bin is older)"
if [ ! -x .venv/bin/python ]; then
  say "creating the virtualenv .venv"
  "$python_bin" -m venv .venv || { apt-get install -y -qq python3-venv >/dev/null && "$python_bin" -m venv .venv; }
fi
say "installing orthanc-harden and its test extras into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'

# The lab's own engine code installs nothing more here; it starts dockerd when none answers.
.venv/bin/python -c 'from orthanc_harden.lab.engine import ensure_engine; ensure_engine(lambda m: print("setup:", m))'
say "ready"
