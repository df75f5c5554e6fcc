"""The `accordion` expert backend: a trained MicroAccordion checkpoint generates the value.

Inside a sandbox the call is relayed to the driver (see `relay`), which has torch. Outside,
two ways to reach the model, chosen by the config:
- `checkpoint` (or TOWER_ACCORDION_CHECKPOINT) and torch importable: the checkpoint is loaded
  in this process (once per process) and sampled directly;
- otherwise `base_url` (or OPENAI_BASE_URL): an `evolve serve CHECKPOINT` endpoint, asked
  through the `openai` backend's `/completions` (cache, retries, usage log included).
The prompt is the byte model's own format: the retrieved rows
as `context\\n=> value` examples, then the query and `=> `.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from harness_tower.backends import openai as oa
from harness_tower.ft import Experience, TowerError

_MODELS: dict[str, Any] = {}  # checkpoint path -> model, loaded once per process


class AccordionBackend:
    def __init__(self, config: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                 log_path: Any = None) -> None:
        env = os.environ if environ is None else environ
        cfg = dict(config)
        self.checkpoint = str(cfg.pop("checkpoint", "") or env.get("TOWER_ACCORDION_CHECKPOINT", ""))
        self.max_tokens = int(cfg.get("max_tokens", 64))
        self.temperature = float(cfg.get("temperature", 0.0))
        self.seed = int(cfg.get("seed", 0))
        self.remote: oa.Config | None = None
        if not (self.checkpoint and _has_torch()):
            if not (cfg.get("base_url") or env.get("OPENAI_BASE_URL")):
                why = "torch is not importable here" if self.checkpoint else "no checkpoint is configured"
                raise TowerError(f"expert backend accordion: {why}; serve the checkpoint with "
                                 "`evolve serve CHECKPOINT` and set backend_config.base_url")
            self.remote = oa.Config.from_mapping({**cfg, "api": "completions"}, env)
            if log_path is not None:
                self.remote = oa.replace(self.remote, log_path=log_path)

    def __call__(self, experience: Experience, query: str, topk: int) -> str:
        return self.answer(oa.examples(experience, query, topk), query)

    def answer(self, shots: list[tuple[str, str]], query: str) -> str:
        prompt = oa.text_prompt(shots, query)
        if self.remote is not None:
            body = oa.request_body(self.remote, shots, query)
            text = oa.answer_text(self.remote, oa.complete(self.remote, body))
        else:
            model = _model(self.checkpoint)
            out = model.generate(prompt.encode("utf-8"), self.max_tokens, temperature=self.temperature,
                                 seed=self.seed)
            text = out.decode("utf-8", errors="replace")
        return text.split("\n", 1)[0].rstrip()


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _model(path: str) -> Any:
    if path not in _MODELS:
        from accordion.checkpoint import load_checkpoint
        from accordion.errors import AccordionError

        try:
            _MODELS[path] = load_checkpoint(path).model
        except AccordionError as exc:
            raise TowerError(f"expert backend accordion: {exc}") from None
    return _MODELS[path]


def backend(config: Mapping[str, Any]) -> Any:
    """Inside a sandbox the request is relayed by the recorder (the driver has torch); else here."""
    from harness_tower.backends.relay import RelayBackend, in_sandbox

    return RelayBackend("accordion", config) if in_sandbox() else AccordionBackend(config)


def translate(experience: Experience, query: str, topk: int) -> str:
    return backend({})(experience, query, topk)  # type: ignore[no-any-return]
