#!/usr/bin/env bash
# Installs what the project needs on a fresh machine: system packages (tmux, git) when
# missing, then a virtual environment in .venv with the project and its extras.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in tmux git; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
EXTRAS=${EXTRAS:-test}
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${EXTRAS}]"
