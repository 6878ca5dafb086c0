#!/usr/bin/env bash
# Install vaekit and what it needs into the current Python. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS="${VAEKIT_EXTRAS:-test}"

# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
if ! "$PYTHON" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi
"$PYTHON" -m pip install --quiet -e ".[${EXTRAS}]"

# Fashion-MNIST from Debian's package, when we may install it; vaekit downloads it otherwise.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
        || echo "note: could not install dataset-fashion-mnist; vaekit will download Fashion-MNIST" >&2
fi
