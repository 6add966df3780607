#!/usr/bin/env bash
# Set everything up, start the lab of vulnerable Orthanc servers, audit them, enable authentication, audit again.
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
echo "== Fix: authentication on, users from a secret store (an owner-only file holding a random password) =="
users=$(python -c 'from orthanc_harden.lab import state; print(state.lab_dir() / "demo-users.json")')
if [ ! -f "$users" ]; then
  (umask 077; python -c 'import json, secrets; print(json.dumps({"radiology": secrets.token_urlsafe(18)}))' > "$users")
fi
pyinfra -y inventories/lab.py --limit package_hosts --data "orthanc_harden_users_ref=file:$users" deploys/auth.py

echo
echo "== Audit again: anonymous access is refused now (ORTH-002/ORTH-108 gone); the firewall control is still to come =="
rc=0
orthanc-harden audit inventories/lab.py --limit package_hosts --json lab-audit-after.json || rc=$?
echo "audit exit status: $rc"
echo "anonymous GET http://127.0.0.1:$port/system -> HTTP $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/system")"
