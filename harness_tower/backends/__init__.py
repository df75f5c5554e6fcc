"""Expert backends: what turns retrieved experience + a query into a value.

`retrieval` lives inline in `harness_tower.ft` (offline, deterministic). The others are
modules here, imported by `ft.load_backend(name)` only when a harness uses them; each exposes
`translate(experience, query, topk) -> str | None` and `backend(config) -> translate`:

- `openai`: any OpenAI-compatible endpoint (`evolve serve`, llama.cpp, vLLM, Ollama, ...).
- `accordion`: a MicroAccordion checkpoint, in process or served by `evolve serve`.

They are standard library only, as harness programs are. **Where** a model call goes is
never up to a genome or a harness: a genome's `backend_config` (and so a relayed request's
`config`) holds only the sampling keys of `SAMPLING` below. Inside a sandbox (no network) a
model call is relayed through the recorder socket to the evaluating process
(`relay.ExpertRelay`), whose endpoints come from the run config's `experts:` section or its
own environment; the key never enters the sandbox, and usage is counted in that process's
memory (nothing is written into the work tree).

| variable | meaning |
|---|---|
| `OPENAI_BASE_URL`, `TOWER_EXPERT_MODEL` | the `openai` endpoint and model (the run config's `experts.openai` wins) |
| `OPENAI_API_KEY` | the key, read in the evaluating process only (never from a config or a genome) |
| `TOWER_ACCORDION_CHECKPOINT` | the `accordion` checkpoint (the run config's `experts.accordion.checkpoint` wins) |
| `TOWER_EXPERT_CACHE` | response cache directory (default `~/.cache/harness-evolve/expert`; `off`: none) |
| `TOWER_EXPERT_LOG` | an optional usage JSONL, appended by the evaluating process (outside any sandbox) |

>>> check_sampling({"temperature": 0.5, "max_tokens": 8}, where="backend_config")
>>> check_sampling({"base_url": "http://127.0.0.1:1/v1"}, where="config").split(":")[0]
'config.base_url is refused'
>>> usage_totals("/nonexistent/expert.jsonl")["expert_requests"]
0
"""
from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

# The keys a genome's backend_config (and a relayed request's config) may hold: how to sample,
# never where. key -> (types, check, what a valid value is).
SAMPLING: dict[str, tuple[tuple[type, ...], Callable[[Any], bool], str]] = {
    "api": ((str,), lambda v: v in ("chat", "completions"), "'chat' or 'completions'"),
    "temperature": ((int, float), lambda v: math.isfinite(v) and 0 <= v <= 2, "a number in 0..2"),
    "max_tokens": ((int,), lambda v: 1 <= v <= 4096, "an integer in 1..4096"),
    "seed": ((int,), lambda v: 0 <= v < 2 ** 63, "an integer >= 0"),
}
# Keys that name a place (or a model on it), and the transport's: the trusted side's (the run
# config's `experts:` section, the evaluating process's environment).
ENDPOINT_KEYS = frozenset({"base_url", "url", "host", "port", "endpoint", "checkpoint", "path", "model",
                           "cache", "log"})
TRANSPORT_KEYS = frozenset({"timeout", "retries", "concurrency"})
USAGE_KEYS = ("expert_requests", "expert_cache_hits", "expert_retries", "expert_prompt_tokens",
              "expert_completion_tokens")


def check_sampling(config: Any, *, where: str) -> str | None:
    """Why `config` is not a valid set of sampling parameters (one line), or None when it is."""
    if not isinstance(config, Mapping):
        return f"{where} must be an object of sampling parameters"
    for key, value in config.items():
        if not isinstance(key, str):
            return f"{where} keys must be strings"
        if key in ("api_key", "key"):
            return f"{where}.{key} is refused: the API key is read from OPENAI_API_KEY in the evaluating process only"
        if key in TRANSPORT_KEYS:
            return (f"{where}.{key} is refused: timeouts, retries and request slots come from the run config "
                    f"(experts.openai.{key}), never from a genome or a harness")
        if key in ENDPOINT_KEYS:
            return (f"{where}.{key} is refused: endpoints come from the run config (experts:) or the evaluating "
                    "process's environment, never from a genome or a harness")
        if key not in SAMPLING:
            return f"{where}: unknown key {key[:40]!r} (allowed: {', '.join(SAMPLING)})"
        types, check, what = SAMPLING[key]
        if not (isinstance(value, types) and not isinstance(value, bool) and check(value)):
            return f"{where}.{key} must be {what}, got {_short(value)}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def empty_usage() -> dict[str, int]:
    return dict.fromkeys(USAGE_KEYS, 0)


class UsageMeter:
    """Usage counted in memory, thread-safe: what an evaluation's metrics report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = empty_usage()

    def add(self, *, cached: bool, attempts: int = 1, prompt_tokens: Any = 0, completion_tokens: Any = 0) -> None:
        """One answer (or one failed call: `attempts` made, no tokens); a cache hit costs nothing."""
        with self._lock:
            if cached:
                self._totals["expert_cache_hits"] += 1
                return
            if attempts <= 0:
                return
            self._totals["expert_requests"] += 1
            self._totals["expert_retries"] += attempts - 1
            self._totals["expert_prompt_tokens"] += token_count(prompt_tokens)
            self._totals["expert_completion_tokens"] += token_count(completion_tokens)

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._totals)


def usage_totals(path: str | Path) -> dict[str, int]:
    """Sum a usage log written through TOWER_EXPERT_LOG: requests sent, cache hits, retries and
    tokens (cache hits cost none). Not a source of metrics: an evaluation's usage is counted in
    the evaluating process's memory (`relay.ExpertRelay.usage`).

    The log has one JSON object a line: `{"backend", "model", "cached", "prompt_tokens",
    "completion_tokens", "total_tokens", "attempts", "latency_s", "time"}`.
    """
    totals = empty_usage()
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:  # not pathlib: harnesses import this package
            text = fh.read()
    except OSError:
        return totals
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed process
        if not isinstance(rec, dict):
            continue
        if rec.get("cached"):
            totals["expert_cache_hits"] += 1
            continue
        totals["expert_requests"] += 1
        totals["expert_retries"] += max(0, token_count(rec.get("attempts", 1)) - 1)
        totals["expert_prompt_tokens"] += token_count(rec.get("prompt_tokens"))
        totals["expert_completion_tokens"] += token_count(rec.get("completion_tokens"))
    return totals


def token_count(value: Any) -> int:
    """A non-negative token count from an untrusted value (an endpoint's `usage`), else 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, 1 << 40)
