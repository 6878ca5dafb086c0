#!/usr/bin/env bash
# The main job: install, train the default conv VAE on Fashion-MNIST for a few epochs, write runs/demo/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
"${PYTHON:-python3}" -m vaekit demo --out runs/demo "$@"
