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
exit "$rc"
