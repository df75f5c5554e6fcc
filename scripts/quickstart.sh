#!/usr/bin/env bash
# Fresh-machine main job: installs everything, then evaluates the shipped kernel tower.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/evolve eval populations/seeds/kernel_line.json --depth 3 --out runs/quickstart "$@"
