"""Expert backends: what turns retrieved experience + a query into a value.

`retrieval` lives inline in `harness_tower.ft` (offline, deterministic). The others are
modules here, imported by `ft._backend(name)` only when a harness uses them; each exposes
`translate(experience, query, topk) -> str | None` (settings from the environment) and
`backend(config) -> translate` (settings from the genome's `backend_config`):

- `openai`: any OpenAI-compatible endpoint (`evolve serve`, llama.cpp, vLLM, Ollama, ...).
- `accordion`: a MicroAccordion checkpoint, in process or served by `evolve serve`.

They are standard library only, as harness programs are. The environment they read:

| variable | meaning |
|---|---|
| `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `TOWER_EXPERT_MODEL` | endpoint, key, model (config wins) |
| `TOWER_EXPERT_CACHE` | response cache directory (default `~/.cache/harness-evolve/expert`) |
| `TOWER_EXPERT_LOG` | usage JSONL (default `.tower/expert.jsonl` in a sandbox's work tree) |

>>> usage_totals("/nonexistent/expert.jsonl")["expert_requests"]
0
"""
from __future__ import annotations

import json
import os
from pathlib import Path

# Variables a sandbox should hand to its harnesses so that they reach the same endpoint and
# cache as the driver. TOWER_EXPERT_LOG is not among them: usage belongs in the trajectory.
PASSTHROUGH = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "TOWER_EXPERT_MODEL", "TOWER_EXPERT_CACHE",
               "TOWER_ACCORDION_CHECKPOINT")
USAGE_FILE = ".tower/expert.jsonl"


def passthrough_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The expert variables set in `environ` (default: this process's environment)."""
    env = os.environ if environ is None else environ
    return {k: env[k] for k in PASSTHROUGH if k in env}


def usage_totals(path: str | Path) -> dict[str, int]:
    """Sum a usage log: requests sent, cache hits, retries and tokens (cache hits cost none).

    The log has one JSON object a line: `{"backend", "model", "cached", "prompt_tokens",
    "completion_tokens", "total_tokens", "attempts", "latency_s", "time"}`.
    """
    totals = {"expert_requests": 0, "expert_cache_hits": 0, "expert_retries": 0,
              "expert_prompt_tokens": 0, "expert_completion_tokens": 0}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return totals
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed harness
        if not isinstance(rec, dict):
            continue
        if rec.get("cached"):
            totals["expert_cache_hits"] += 1
            continue
        totals["expert_requests"] += 1
        totals["expert_retries"] += max(0, int(rec.get("attempts", 1) or 1) - 1)
        totals["expert_prompt_tokens"] += int(rec.get("prompt_tokens") or 0)
        totals["expert_completion_tokens"] += int(rec.get("completion_tokens") or 0)
    return totals
