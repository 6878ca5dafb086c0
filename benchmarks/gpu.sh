#!/usr/bin/env bash
# Issue 48 on a lent GPU machine, which reaches no network: what it lacks travels in .gpu/ (git-ignored, ~33 MB).
#   bash benchmarks/gpu.sh prepare     here, once: Fashion-MNIST's four files and pythae's wheels (with the
#                                      pydantic it needs, for the device's Python 3.12) into .gpu/
#   bash benchmarks/gpu.sh [FLAGS]     there, with .gpu carried: install the wheels into /tmp/site, run
#                                      python -m benchmarks.gpu FLAGS, copy the results file and log to $OUT
# Safe to rerun: the wheels go into a fresh folder, the results file keeps the parts a rerun leaves out.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(pythae==0.1.2 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
        typing-extensions==4.16.0)
FASHION=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

if [[ "${1:-}" == prepare ]]; then
  source_dir="${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
  mkdir -p .gpu/data/fashion-mnist .gpu/wheels
  for f in "${FASHION[@]}"; do cp "$source_dir/$f" .gpu/data/fashion-mnist/; done
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/wheels "${WHEELS[@]}"
  du -sh .gpu
  exit 0
fi

[[ -d .gpu/wheels && -d .gpu/data ]] || { echo "no .gpu/: run 'bash benchmarks/gpu.sh prepare' here and carry .gpu" >&2; exit 2; }
rm -rf /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/wheels/*.whl
export PYTHONPATH="$PWD/src:/tmp/site" VAEKIT_DATA="$PWD/.gpu/data" PYTHONUNBUFFERED=1
status=0
python3 -m benchmarks.gpu "$@" 2>&1 | tee /tmp/gpu.log || status=$?
if [[ -n "${OUT:-}" ]]; then cp benchmarks/results/gpu_*.json /tmp/gpu.log "$OUT"/ 2>/dev/null || true; fi
exit "$status"
