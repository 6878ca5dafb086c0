#!/usr/bin/env bash
# Install vaekit with its test and app extras, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VAEKIT_EXTRAS="${VAEKIT_EXTRAS:-test,all}" bash scripts/setup.sh
if [ -z "${VAEKIT_DATA:-}" ] && [ -d ../shared/data ]; then
    export VAEKIT_DATA="$(cd ../shared/data && pwd)"
fi
python3 -m pytest "$@"
