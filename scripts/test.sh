#!/usr/bin/env bash
# Install vaekit with its apps' extras and the test tools at the exact versions of constraints/test.txt (so a
# new release of a test tool cannot break the suite on its own), then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VAEKIT_EXTRAS="${VAEKIT_EXTRAS:-test,all}" VAEKIT_CONSTRAINTS="${VAEKIT_CONSTRAINTS:-constraints/test.txt}" \
    bash scripts/setup.sh
if [ -z "${VAEKIT_DATA:-}" ] && [ -d ../shared/data ]; then
    export VAEKIT_DATA="$(cd ../shared/data && pwd)"
fi
# pytest-xdist: one worker a core, at most 4 (each holds torch and some data sets in memory); a test file's tests
# stay together on one worker, in order. VAEKIT_TEST_WORKERS=0 runs them in this process, one after another.
"${PYTHON:-python3}" -m pytest -n "${VAEKIT_TEST_WORKERS:-auto}" --maxprocesses 4 --dist loadfile "$@"
