#!/usr/bin/env bash
# Fresh-machine test command: installs everything, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test,accordion bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
