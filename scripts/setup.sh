#!/usr/bin/env bash
# Installs what the project needs on a fresh machine: system packages (tmux, git) when
# missing, then a virtual environment in .venv with the project and its extras.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
updated=""
apt_install() {
  [ -n "$updated" ] || { $SUDO apt-get update -qq; updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
need=()
for tool in tmux git; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need[*]}"
  apt_install "${need[@]}"
fi
# bubblewrap gives the stronger `bwrap` sandbox; without it the `process` level is used.
if ! command -v bwrap >/dev/null 2>&1; then
  echo "setup: installing bubblewrap"
  apt_install bubblewrap || echo "setup: bubblewrap could not be installed; sandboxes use the process level"
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
EXTRAS=${EXTRAS:-test}
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${EXTRAS}]"
.venv/bin/python -c "from harness_tower.sandbox import resolve_isolation as r; print('setup: sandbox isolation in force:', r('auto'))"
