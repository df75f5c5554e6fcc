"""Expert requests relayed through the recorder: a sandboxed harness has no network.

Inside a sandbox (TOWER_RECORDER set) a model backend does not open HTTP connections itself:
it sends the retrieved examples and the query over the recorder's Unix socket as
`{"op": "expert", "session": ..., "backend": ..., "config": ..., "shots": [[q, v], ...],
"query": ...}`, and the sandbox's side answers `{"value": ...}` by calling `handle`. The
endpoint, the API key, the response cache, the concurrency slots and the usage log all stay
with the driver; the harness only ever sees answers. `handle` talks only to loopback
endpoints, the driver's OPENAI_BASE_URL, or prefixes listed in TOWER_EXPERT_ALLOW.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness_tower import ft

LOOPBACK = ("localhost", "::1")


class RelayBackend:
    """Harness side: a translate function whose model call goes through the recorder socket."""

    def __init__(self, name: str, config: Mapping[str, Any] | None) -> None:
        self.name, self.config = name, dict(config or {})
        self._term: ft.Terminal | None = None

    def __call__(self, experience: ft.Experience, query: str, topk: int) -> str:
        shots = [[experience.rows[i][0], experience.rows[i][2]] for _, i in reversed(experience.ranked(query, topk))]
        if self._term is None:
            self._term = ft.Terminal(timeout=900.0)  # the driver's retries and backoff happen inside one call
        reply = self._term.call(op="expert", session="expert", backend=self.name, config=self.config,
                                shots=shots, query=query)
        return str(reply.get("value", ""))


def in_sandbox() -> bool:
    return bool(os.environ.get("TOWER_RECORDER"))


def allowed(base_url: str, environ: Mapping[str, str]) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host in LOOPBACK or host.startswith("127."):
        return True
    prefixes = [environ.get("OPENAI_BASE_URL", "")] + environ.get("TOWER_EXPERT_ALLOW", "").split(",")
    return any(p.strip() and base_url.startswith(p.strip().rstrip("/")) for p in prefixes)


def handle(request: Mapping[str, Any], work: Path) -> dict[str, Any]:
    """Sandbox side: answer one relayed expert request; usage goes to `work/.tower/expert.jsonl`."""
    from harness_tower.backends import accordion
    from harness_tower.backends import openai as oa
    from harness_tower.errors import TowerError

    name, config = request.get("backend"), request.get("config") or {}
    shots, query = request.get("shots"), request.get("query")
    if name not in ("openai", "accordion") or not isinstance(config, Mapping) or not isinstance(query, str):
        raise TowerError(f"expert relay: malformed request for backend {name!r}")
    if not isinstance(shots, list) or not all(isinstance(s, list) and len(s) == 2 and
                                              all(isinstance(x, str) for x in s) for s in shots):
        raise TowerError("expert relay: shots must be [query, value] string pairs")
    pairs = [(q, v) for q, v in shots]
    log = work / ".tower" / "expert.jsonl"
    try:
        if name == "accordion":
            return {"value": accordion.AccordionBackend(config, log_path=log).answer(pairs, query)}
        cfg = oa.replace(oa.Config.from_mapping(config), log_path=log)
        if not allowed(cfg.base_url, os.environ):
            raise TowerError(f"expert relay: {cfg.base_url} is not an allowed endpoint (loopback, OPENAI_BASE_URL "
                             "or TOWER_EXPERT_ALLOW)")
        return {"value": oa.OpenAIBackend(cfg).answer(pairs, query)}
    except ft.TowerError as exc:  # the op library's error type: re-raised as the tower's, one line
        raise TowerError(str(exc)) from None
