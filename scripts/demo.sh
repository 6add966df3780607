#!/usr/bin/env bash
# Set everything up, start the lab of vulnerable Orthanc servers, audit them, remediate them, audit again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

orthanc-harden lab up
echo
echo "== What a vulnerable server looks like: anonymous GET /system answers with its details =="
port=$(python -c 'from orthanc_harden.lab import state; print(state.load(state.lab_dir())["hosts"][0]["http_port"])')
echo "anonymous GET http://127.0.0.1:$port/system -> HTTP $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/system")"
echo
echo "== Audit (read-only): which Orthanc servers are exposed, and why =="
rc=0
orthanc-harden audit inventories/lab.py --json lab-audit.json || rc=$?
echo "audit exit status: $rc (0 compliant, 1 findings, 2 some host could not be audited); JSON in lab-audit.json"

echo
echo "== Remediate: upgrade, authentication with users from a secret store, firewall on the package hosts,"
echo "   authentication on the Orthanc container through the Docker Engine API; then audit each host =="
users=$(python -c 'from orthanc_harden.lab import state; print(state.lab_dir() / "demo-users.json")')
if [ ! -f "$users" ]; then
  (umask 077; python -c 'import json, secrets; print(json.dumps({"radiology": secrets.token_urlsafe(18)}))' > "$users")
fi
export ORTHANC_HARDEN_LAB_USERS_REF="file:$users"   # the lab inventory hands this reference to every host
rc=0
orthanc-harden remediate inventories/lab.py --json lab-remediate.json || rc=$?
echo "remediate exit status: $rc (0 all compliant, 1 some not compliant, 2 some failed); JSON in lab-remediate.json"

echo
echo "== Audit again: anonymous access is refused on every host and container now =="
rc=0
orthanc-harden audit inventories/lab.py --json lab-audit-after.json || rc=$?
echo "audit exit status: $rc"
echo "anonymous GET http://127.0.0.1:$port/system -> HTTP $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/system")"
