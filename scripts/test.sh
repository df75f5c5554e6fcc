#!/usr/bin/env bash
# Fresh-machine test command: installs everything (the project, its test extras, and the
# programs the tests drive for real: asciinema, chromium), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test,accordion bash scripts/setup.sh
bash scripts/setup_llama.sh
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
command -v asciinema >/dev/null 2>&1 || need+=(asciinema)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "test set-up: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
