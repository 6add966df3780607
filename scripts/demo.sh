#!/usr/bin/env bash
# Set everything up, start the lab of vulnerable Orthanc servers, audit them, show what remediation would change,
# remediate them, audit again, and show that the old servers were upgraded with their DICOM data kept.
# ORTHANC_HARDEN_LAB and ORTHANC_HARDEN_DEMO_PORT_BASE run it on a lab other than `default` (the tests do);
# ORTHANC_HARDEN_DEMO_SETUP=0 skips scripts/setup.sh; ORTHANC_HARDEN_DEMO_OUT is where the JSON reports go (.).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${ORTHANC_HARDEN_DEMO_SETUP:-1}" = 0 ] || bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
lab="${ORTHANC_HARDEN_LAB:-default}"
export ORTHANC_HARDEN_LAB="$lab"
out="${ORTHANC_HARDEN_DEMO_OUT:-.}"
started=$(date +%s)

# One package host and the Orthanc container start below 1.5.8 (CVE-2025-0896's own fix is the upgrade).
orthanc-harden lab up --lab "$lab" --port-base "${ORTHANC_HARDEN_DEMO_PORT_BASE:-24200}" --old-hosts 1 --old-containers 1
echo
echo "== What a vulnerable server looks like: anonymous GET /system answers with its details =="
port=$(python -c 'import os; from orthanc_harden.lab import state; print(state.load(state.lab_dir(os.environ["ORTHANC_HARDEN_LAB"]))["hosts"][0]["http_port"])')
echo "anonymous GET http://127.0.0.1:$port/system -> HTTP $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/system")"
echo
echo "== Audit (read-only): which Orthanc servers are exposed, and why =="
rc=0
orthanc-harden audit inventories/lab.py --json "$out/lab-audit.json" || rc=$?
echo "audit exit status: $rc (0 compliant, 1 findings, 2 some host could not be audited); JSON in lab-audit.json"

users=$(python -c 'import os; from orthanc_harden.lab import state; print(state.lab_dir(os.environ["ORTHANC_HARDEN_LAB"]) / "demo-users.json")')
if [ ! -f "$users" ]; then
  (umask 077; python -c 'import json, secrets; print(json.dumps({"radiology": secrets.token_urlsafe(18)}))' > "$users")
fi
export ORTHANC_HARDEN_LAB_USERS_REF="file:$users"   # the lab inventory hands this reference to every host

echo
echo "== Remediate --dry (like ansible --check --diff): what would change on each host, passwords masked =="
rc=0
orthanc-harden remediate inventories/lab.py --dry || rc=$?
echo "remediate --dry exit status: $rc (1: changes to make); nothing was changed"

echo
echo "== Remediate: upgrade, authentication with users from a secret store, firewall on the package hosts,"
echo "   upgrade and authentication on the Orthanc container through the Docker Engine API; then audit each host =="
rc=0
orthanc-harden remediate inventories/lab.py --json "$out/lab-remediate.json" || rc=$?
echo "remediate exit status: $rc (0 all compliant, 1 some not compliant, 2 some failed); JSON in lab-remediate.json"

echo
echo "== Audit again: anonymous access is refused on every host and container now =="
rc=0
orthanc-harden audit inventories/lab.py --json "$out/lab-audit-after.json" || rc=$?
echo "audit exit status: $rc"
echo "anonymous GET http://127.0.0.1:$port/system -> HTTP $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/system")"

echo
echo "== Upgraded, data kept: each server's version now and its seeded DICOM instances =="
python -m orthanc_harden.lab.kept "$users" "$lab"
echo "demo done in $(( $(date +%s) - started )) s (after setup)"
