"""The `accordion` expert backend: a trained MicroAccordion checkpoint generates the value.

Which checkpoint is the trusted side's: the run config's `experts.accordion.checkpoint`, or
TOWER_ACCORDION_CHECKPOINT in the evaluating process's environment, never a genome or a
harness. Inside a sandbox the call is relayed to the evaluating process (see `relay`), which
has torch and loads the checkpoint there (once per process). Outside a sandbox (a harness
run by hand) the environment decides: TOWER_ACCORDION_CHECKPOINT with torch importable loads
it here; otherwise OPENAI_BASE_URL names an `evolve serve CHECKPOINT` endpoint, asked through
the `openai` backend's `/completions` (cache, retries, usage included).
The prompt is the byte model's own format: the retrieved rows as `context\\n=> value`
examples, then the query and `=> `.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from harness_tower.backends import UsageMeter, check_sampling
from harness_tower.backends import openai as oa
from harness_tower.ft import Experience, TowerError

_MODELS: dict[str, Any] = {}  # checkpoint path -> model, loaded once per process
_STAMPS: dict[str, tuple[int, int]] = {}  # checkpoint path -> (mtime_ns, size) it was loaded at
_LOAD = threading.Lock()
_GENERATE = threading.Lock()  # relayed requests arrive on several threads; one model call at a time
NO_CHECKPOINT = ("expert backend accordion: no checkpoint is configured (set experts.accordion.checkpoint in the "
                 "run config, or TOWER_ACCORDION_CHECKPOINT where the evaluation runs)")


class AccordionBackend:
    """Answers from one checkpoint, chosen by the trusted side; sampling from a checked mapping."""

    def __init__(self, checkpoint: str | None, sampling: Mapping[str, Any] | None = None, *,
                 remote: oa.Config | None = None, meter: UsageMeter | None = None) -> None:
        why = check_sampling(sampling or {}, where="backend_config")
        if why:
            raise TowerError(f"expert backend accordion: {why}")
        cfg = dict(sampling or {})
        self.checkpoint = checkpoint or ""
        self.max_tokens = int(cfg.get("max_tokens", 64))
        self.temperature = float(cfg.get("temperature", 0.0))
        self.seed = int(cfg.get("seed", 0))
        self.meter = meter
        self.remote = remote
        if remote is None and not self.checkpoint:
            raise TowerError(NO_CHECKPOINT)

    @classmethod
    def from_env(cls, sampling: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None) -> AccordionBackend:
        """Outside a sandbox: TOWER_ACCORDION_CHECKPOINT (with torch), else `evolve serve` at OPENAI_BASE_URL."""
        env = os.environ if environ is None else environ
        checkpoint = env.get("TOWER_ACCORDION_CHECKPOINT", "")
        if checkpoint and _has_torch():
            return cls(checkpoint, sampling)
        if not env.get("OPENAI_BASE_URL"):
            why = "torch is not importable here" if checkpoint else "no checkpoint is configured"
            raise TowerError(f"expert backend accordion: {why}; set TOWER_ACCORDION_CHECKPOINT, or serve the "
                             "checkpoint with `evolve serve CHECKPOINT` and set OPENAI_BASE_URL")
        remote = oa.Config.from_mapping({**dict(sampling or {}), "api": "completions"}, env)
        return cls(None, sampling, remote=remote)

    def __call__(self, experience: Experience, query: str, topk: int) -> str:
        return self.answer(oa.examples(experience, query, topk), query)

    def answer(self, shots: list[tuple[str, str]], query: str) -> str:
        prompt = oa.text_prompt(shots, query)
        if self.remote is not None:
            body = oa.request_body(self.remote, shots, query)
            text = oa.exchange(self.remote, body, self.meter).text
        else:
            model = _model(self.checkpoint)
            data = prompt.encode("utf-8")
            with _GENERATE:
                out = model.generate(data, self.max_tokens, temperature=self.temperature, seed=self.seed)
            if self.meter is not None:  # a byte model: its tokens are bytes
                self.meter.add(cached=False, attempts=1, prompt_tokens=len(data), completion_tokens=len(out))
            text = out.decode("utf-8", errors="replace")
        return text.split("\n", 1)[0].rstrip()


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _model(path: str) -> Any:
    """The model of the configured checkpoint, loaded once per process (again if the file changed).
    Errors say what failed, not where: the path is the trusted side's, not the harness's."""
    try:
        st = os.stat(path)
    except OSError:
        raise TowerError("expert backend accordion: the configured checkpoint does not exist or cannot be "
                         "read") from None
    stamp = (st.st_mtime_ns, st.st_size)
    with _LOAD:
        if _STAMPS.get(path) != stamp:
            from accordion.checkpoint import load_checkpoint
            from accordion.errors import AccordionError

            try:
                _MODELS[path] = load_checkpoint(path).model
            except AccordionError:
                raise TowerError("expert backend accordion: the configured checkpoint cannot be loaded (not a "
                                 "MicroAccordion checkpoint)") from None
            _STAMPS[path] = stamp
        return _MODELS[path]


def loaded() -> list[str]:
    """The checkpoints this process has loaded (each once: a later request reuses it)."""
    with _LOAD:
        return sorted(_MODELS)


def backend(config: Mapping[str, Any]) -> Any:
    """Inside a sandbox the request is relayed by the recorder (the evaluator has torch); else here."""
    from harness_tower.backends.relay import RelayBackend, in_sandbox

    return RelayBackend("accordion", config) if in_sandbox() else AccordionBackend.from_env(config)


def translate(experience: Experience, query: str, topk: int) -> str:
    return backend({})(experience, query, topk)  # type: ignore[no-any-return]
