#!/usr/bin/env bash
# Fresh-machine test command: installs everything (the project, its test extras, and the
# programs the tests drive for real: asciinema, chromium), lints (ruff) and type-checks (mypy,
# settings in pyproject.toml), then runs the whole suite. A failing step stops the script.
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
echo "lint: ruff"
.venv/bin/ruff check .
echo "type check: mypy"
.venv/bin/mypy
echo "tests: pytest"
exec .venv/bin/python -m pytest "$@"
