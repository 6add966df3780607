#!/usr/bin/env bash
# Set everything up, then run the whole test suite: unit specs, real secret stores, the Docker lab.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
export PATH="$PWD/.venv/bin:$PATH"

.venv/bin/ruff check . || exit 1
.venv/bin/python -m pytest -ra -p no:cacheprovider "$@" tests
rc=$?
if [ "$rc" = 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure here" >&2
  exit 1
fi

# The Molecule scenarios, about a minute more once pytest has built the lab images: always under CI=true, on a
# workstation with ORTHANC_HARDEN_MOLECULE=1 only, since their labs (mol-pkg, mol-ctr) have fixed names and ports
# and a scenario's first step takes down a lab of its name that someone may be using by hand.
if [ "${CI:-}" = true ] || [ "${ORTHANC_HARDEN_MOLECULE:-0}" = 1 ]; then
  passed=0 failed=0
  for scenario in package-host container-host; do
    if timeout 1800 molecule test -s "$scenario"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  done
  echo "molecule: $passed passed, $failed failed"
  [ "$failed" = 0 ] || rc=1
fi
exit "$rc"
