"""Expert backends: what turns retrieved experience + a query into a value.

`retrieval` lives inline in `harness_tower.ft` (offline, deterministic). The others are
modules here, imported by `ft._backend(name)` only when a harness uses them; each exposes
`translate(experience, query, topk) -> str | None` (settings from the environment) and
`backend(config) -> translate` (settings from the genome's `backend_config`):

- `openai`: any OpenAI-compatible endpoint (`evolve serve`, llama.cpp, vLLM, Ollama, ...).
- `accordion`: a MicroAccordion checkpoint, in process or served by `evolve serve`.

They are standard library only, as harness programs are. Inside a sandbox (no network) a
model call is relayed through the recorder socket to the driver (`relay`), so the variables
below are read in the driver's environment; the key never enters the sandbox.

| variable | meaning |
|---|---|
| `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `TOWER_EXPERT_MODEL` | endpoint, key, model (config wins) |
| `TOWER_EXPERT_CACHE` | response cache directory (default `~/.cache/harness-evolve/expert`) |
| `TOWER_EXPERT_LOG` | usage JSONL outside a sandbox (relayed calls: `.tower/expert.jsonl` in the work tree) |
| `TOWER_EXPERT_ALLOW` | comma-separated URL prefixes a relayed call may reach besides loopback |

>>> usage_totals("/nonexistent/expert.jsonl")["expert_requests"]
0
"""
from __future__ import annotations

import json
from pathlib import Path

USAGE_FILE = ".tower/expert.jsonl"  # in the work tree: committed with the trajectory


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
