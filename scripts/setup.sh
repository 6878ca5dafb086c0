#!/usr/bin/env bash
# Install vaekit from this checkout into the current Python (activate a virtual environment first to keep it
# apart: python3 -m venv .venv && . .venv/bin/activate). Safe to run again: pip skips what is there.
#   VAEKIT_EXTRAS       extras to add (the demo needs none; scripts/test.sh asks for test,all)
#   VAEKIT_CONSTRAINTS  a pip constraints file (scripts/test.sh passes constraints/test.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS="${VAEKIT_EXTRAS:-}"

# torch only where none is importable, so a user's torch (any >= 2.1, CPU or CUDA) is never replaced. Then
# pip installs 2.13.0, the release CI tests: where pip's configuration offers a CPU build (as on vaekit's CI
# machines) it takes that, elsewhere PyPI's default for the platform, which on Linux is a CUDA build of
# several GB. For a CPU-only or another CUDA build, install torch first as https://pytorch.org/get-started
# says, then run this script.
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi
"$PYTHON" -m pip install --quiet ${VAEKIT_CONSTRAINTS:+--constraint "$VAEKIT_CONSTRAINTS"} -e ".${EXTRAS:+[$EXTRAS]}"

# Fashion-MNIST from Debian's package, when we may install it; vaekit downloads it otherwise.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
        || echo "note: could not install dataset-fashion-mnist; vaekit will download Fashion-MNIST" >&2
fi
