#!/usr/bin/env bash
# Build vaekit's wheel and sdist, install the wheel into a new virtual environment with the lowest versions of
# its requirements that pyproject.toml allows (constraints/lowest.txt), and use it as a user would: the demo for
# one epoch on scikit-learn's digits, the report's files, then the core tests against the installed wheel.
# Run by .ci/run; takes about 2 minutes on 2 cores with pip's cache warm.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --constraint constraints/test.txt build
"$py" -m build --sdist --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
wheel=$(ls "$work"/dist/vaekit-*.whl)
# The listing is read whole first: `unzip -l | grep -q` under pipefail fails once grep stops reading (SIGPIPE).
listing="$(unzip -l "$wheel")"
for inside in vaekit/accel/native.c vaekit/apps/static/; do
    grep -q "$inside" <<<"$listing" || { echo "check_wheel: $inside is missing from $(basename "$wheel")" >&2; exit 1; }
done
"$py" -m pip install --quiet "torch==2.13.0"
"$py" -m pip install --quiet --constraint constraints/lowest.txt "$wheel" scikit-learn "$(grep "^pytest==" constraints/test.txt)"  # scikit-learn for --data digits
(cd "$work" && "$work/venv/bin/vaekit" demo --epochs 1 --data digits --k 10 --limit 100 --out demo >/dev/null)
for made in report.html model.safetensors samples.png; do
    [ -s "$work/demo/$made" ] || { echo "check_wheel: the installed wheel's demo wrote no $made" >&2; exit 1; }
done
# The tests import the installed wheel (tests/ adds no src/ to the path), in the lowest requirements.
"$py" -m pytest -p no:cacheprovider -p no:warnings tests/test_vae_math.py tests/test_parts.py tests/test_api.py tests/test_io.py
echo "check_wheel: $(basename "$wheel") and the sdist built; the wheel installs, its demo and core tests pass with the lowest requirements"
