#!/usr/bin/env bash
# Fresh-machine main job: installs everything, then runs a small embedded evolution
# (configs/quickstart.yaml) that ends by printing a Pareto front.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/evolve run configs/quickstart.yaml "$@"
