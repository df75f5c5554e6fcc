"""Expert requests relayed through the recorder: a sandboxed harness has no network.

Inside a sandbox (started by the recorder) a model backend does not open HTTP connections itself:
it sends the retrieved examples and the query over the recorder's Unix socket as
`{"op": "expert", "session": ..., "backend": ..., "config": ..., "shots": [[q, v], ...],
"query": ...}`, and the evaluating process answers `{"value": ...}` through an `ExpertRelay`.

Everything in such a request is untrusted. **Where** the call goes is never in it: the relay
is built by the trusted side from `ExpertEndpoints` (the run config's `experts:` section,
gaps filled from the evaluating process's environment); the request's `config` may carry
only the sampling keys of `harness_tower.backends.SAMPLING` (anything else is refused with
one line). The API key, the response cache, the concurrency slots and the usage counts stay
in the evaluating process; the harness only ever sees answers, and errors that say what
failed (HTTP status, timeout, refused) without anything the endpoint wrote.

>>> ExpertEndpoints.from_config({"openai": {"base_url": "http://127.0.0.1:8000/v1", "model": "m"}},
...                             environ={"TOWER_ACCORDION_CHECKPOINT": "/ck.pt"})
ExpertEndpoints(openai_base_url='http://127.0.0.1:8000/v1', openai_model='m', accordion_checkpoint='/ck.pt', \
openai_timeout=30.0, openai_retries=4, openai_concurrency=2)
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness_tower import ft

MAX_SHOTS = 32
MAX_PROMPT_CHARS = 200_000  # shots and query together: what one request may ask an endpoint to read
# The evaluating process's variables a relay reads (once, when it is built).
RELAY_ENV = ("OPENAI_API_KEY", "TOWER_EXPERT_CACHE", "TOWER_EXPERT_LOG")


class RelayBackend:
    """Harness side: a translate function whose model call goes through the recorder socket."""

    def __init__(self, name: str, config: Mapping[str, Any] | None) -> None:
        self.name, self.config = name, dict(config or {})
        self._term: ft.Terminal | None = None

    def __call__(self, experience: ft.Experience, query: str, topk: int) -> str:
        shots = [[experience.rows[i][0], experience.rows[i][2]] for _, i in reversed(experience.ranked(query, topk))]
        if self._term is None:
            self._term = ft.Terminal(timeout=900.0)  # the evaluator's retries and backoff happen inside one call
        reply = self._term.call(op="expert", session="expert", backend=self.name, config=self.config,
                                shots=shots, query=query)
        return str(reply.get("value", ""))


def in_sandbox() -> bool:
    """Started by the recorder: a connection on TOWER_RECORDER_FD (TOWER_RECORDER: its socket path)."""
    return bool(os.environ.get("TOWER_RECORDER_FD") or os.environ.get("TOWER_RECORDER"))


# --------------------------------------------------------------------------------------
# The trusted side
# --------------------------------------------------------------------------------------
# experts: section -> backend -> field -> (ExpertEndpoints attribute, environment variable)
SECTION: dict[str, dict[str, tuple[str, str | None]]] = {
    "openai": {"base_url": ("openai_base_url", "OPENAI_BASE_URL"), "model": ("openai_model", "TOWER_EXPERT_MODEL"),
               "timeout": ("openai_timeout", None), "retries": ("openai_retries", None),
               "concurrency": ("openai_concurrency", None)},
    "accordion": {"checkpoint": ("accordion_checkpoint", "TOWER_ACCORDION_CHECKPOINT")},
}
LABELS = {attr: f"experts.{name}.{key}" for name, known in SECTION.items() for key, (attr, _) in known.items()}


@dataclass(frozen=True)
class ExpertEndpoints:
    """Where model calls may go, and how they travel; built by the trusted side only (the run
    config, the evaluating process's environment), never from a genome or a harness request."""

    openai_base_url: str | None = None
    openai_model: str | None = None
    accordion_checkpoint: str | None = None
    openai_timeout: float = 30.0  # seconds per attempt
    openai_retries: int = 4  # attempts after the first, on 429/5xx/no answer
    openai_concurrency: int = 2  # requests in flight to the endpoint, across processes sharing the cache

    def __post_init__(self) -> None:
        from harness_tower.errors import TowerError

        problem = _endpoint_problem({f.name: getattr(self, f.name) for f in fields(self)})
        if problem:
            attr, what = problem
            raise TowerError(f"{LABELS[attr]}: {what}")
        if self.openai_base_url is not None:
            object.__setattr__(self, "openai_base_url", self.openai_base_url.rstrip("/"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ExpertEndpoints:
        """OPENAI_BASE_URL, TOWER_EXPERT_MODEL and TOWER_ACCORDION_CHECKPOINT (empty: unset)."""
        return cls.from_config(None, environ)

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
                    ) -> ExpertEndpoints:
        """The run config's `experts:` section (`{openai: {base_url, model, timeout, retries,
        concurrency}, accordion: {checkpoint}}`, every part optional); the environment fills gaps."""
        from harness_tower.errors import TowerError

        env = os.environ if environ is None else environ
        section = {} if mapping is None else mapping
        if not isinstance(section, Mapping):
            raise TowerError("experts: must be a mapping of backend name to settings")
        unknown = sorted(str(k) for k in section if k not in SECTION)
        if unknown:
            raise TowerError(f"experts.{unknown[0]}: unknown backend (known: {', '.join(SECTION)})")
        values: dict[str, Any] = {}
        from_env: dict[str, str] = {}  # attribute -> the variable its value came from
        for name, known in SECTION.items():
            part = section.get(name) or {}
            if not isinstance(part, Mapping):
                raise TowerError(f"experts.{name}: must be a mapping of settings")
            for key in part:
                if key not in known:
                    hint = (" (the key is read from OPENAI_API_KEY where the evaluation runs)"
                            if key in ("api_key", "key") else f" (known: {', '.join(known)})")
                    raise TowerError(f"experts.{name}.{key}: unknown field{hint}")
            for key, (attr, var) in known.items():
                value = part.get(key)
                if value is None and var is not None and env.get(var):
                    value, from_env[attr] = env[var], var
                if value is not None:
                    values[attr] = value
        problem = _endpoint_problem(values)
        if problem:
            attr, what = problem
            raise TowerError(f"{from_env.get(attr) or LABELS[attr]}: {what}")
        return cls(**values)

    def to_config(self) -> dict[str, Any]:
        """The `experts:` section that builds these endpoints (unset fields left out)."""
        out: dict[str, dict[str, Any]] = {}
        for name, known in SECTION.items():
            part = {key: getattr(self, attr) for key, (attr, _) in known.items() if getattr(self, attr) is not None}
            if part:
                out[name] = part
        return out


def _endpoint_problem(values: Mapping[str, Any]) -> tuple[str, str] | None:
    """(attribute, what it must be) for the first bad value of ExpertEndpoints fields, or None."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def one_line(v: Any, most: int) -> bool:
        return isinstance(v, str) and 0 < len(v) <= most and v.isprintable()

    url, model, ck = (values.get(k) for k in ("openai_base_url", "openai_model", "accordion_checkpoint"))
    if url is not None and not (one_line(url, 2000) and url.startswith(("http://", "https://")) and " " not in url):
        return "openai_base_url", f"must be an http(s) URL such as http://127.0.0.1:8000/v1 (got {str(url)[:80]!r})"
    if model is not None and not one_line(model, 200):
        return "openai_model", "must be a model name (one printable line)"
    if ck is not None and not (isinstance(ck, str) and ck and "\0" not in ck):
        return "accordion_checkpoint", "must be a file path"
    t = values.get("openai_timeout", 30.0)
    if not (isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and 0 < t <= 600):
        return "openai_timeout", f"must be seconds in (0, 600], got {t!r}"
    retries, slots = values.get("openai_retries", 4), values.get("openai_concurrency", 2)
    if not (is_int(retries) and 0 <= retries <= 10):
        return "openai_retries", f"must be an integer in 0..10, got {retries!r}"
    if not (is_int(slots) and 1 <= slots <= 64):
        return "openai_concurrency", f"must be an integer in 1..64, got {slots!r}"
    return None


RELAYED = ("openai", "accordion")  # the endpoints a relay answers for (the run config's experts:)


class ExpertRelay:
    """The evaluating process's side of relayed expert requests: one per evaluation.

    `handle(request)` answers one request (`{"value": str}`) or raises a one-line
    `harness_tower.errors.TowerError`; `usage()` is what this relay's requests cost, counted
    here in memory (nothing in a work tree can change it).
    """

    def __init__(self, endpoints: ExpertEndpoints, *, environ: Mapping[str, str] | None = None) -> None:
        from harness_tower.backends import UsageMeter

        env = os.environ if environ is None else environ
        self.endpoints = endpoints
        self._env = {k: env[k] for k in RELAY_ENV if k in env}
        # one meter per endpoint: a run's budget limits the tokens of each (evolve.budget)
        self._meters = {name: UsageMeter() for name in RELAYED}

    def usage(self) -> dict[str, int]:
        """expert_requests, expert_cache_hits, expert_retries, expert_prompt_tokens, expert_completion_tokens
        (every endpoint together), and expert_tokens_<endpoint> (prompt + completion) for each."""
        totals: dict[str, int] = {}
        for name, meter in self._meters.items():
            mine = meter.totals()
            for key, value in mine.items():
                totals[key] = totals.get(key, 0) + value
            totals[f"expert_tokens_{name}"] = mine["expert_prompt_tokens"] + mine["expert_completion_tokens"]
        return totals

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from harness_tower.errors import TowerError

        name = request.get("backend") if isinstance(request, Mapping) else None
        try:
            pairs, query, config = self._check(request)
            return {"value": self._answer(str(name), pairs, query, config)}
        except TowerError as exc:
            raise TowerError(_one_line(exc.message)) from None
        except ft.TowerError as exc:  # the op library's error type (the backends'): re-raised as the tower's
            raise TowerError(_one_line(str(exc))) from None
        except Exception as exc:  # noqa: BLE001 - a request boundary: what failed, never its text
            raise TowerError(f"expert relay: the {name} backend failed ({type(exc).__name__})") from None

    # --- internals ------------------------------------------------------------------------
    @staticmethod
    def _check(request: Any) -> tuple[list[tuple[str, str]], str, dict[str, Any]]:
        from harness_tower.backends import check_sampling
        from harness_tower.errors import TowerError

        if not isinstance(request, Mapping):
            raise TowerError("expert relay: a request must be a JSON object")
        name, config = request.get("backend"), request.get("config")
        shots, query = request.get("shots"), request.get("query")
        if name not in RELAYED:
            raise TowerError(f"expert relay: unknown backend {str(name)[:40]!r} (relayed: {', '.join(RELAYED)})")
        why = check_sampling({} if config is None else config, where="config")
        if why:
            raise TowerError(f"expert relay: {why}")
        if not isinstance(query, str):
            raise TowerError("expert relay: query must be a string")
        if not isinstance(shots, list) or not all(isinstance(s, list) and len(s) == 2 and
                                                  all(isinstance(x, str) for x in s) for s in shots):
            raise TowerError("expert relay: shots must be [query, value] string pairs")
        if len(shots) > MAX_SHOTS:
            raise TowerError(f"expert relay: at most {MAX_SHOTS} shots a request (got {len(shots)})")
        if len(query) + sum(len(q) + len(v) for q, v in shots) > MAX_PROMPT_CHARS:
            raise TowerError(f"expert relay: shots and query exceed {MAX_PROMPT_CHARS} characters")
        return [(q, v) for q, v in shots], query, dict(config or {})

    def _answer(self, name: str, pairs: list[tuple[str, str]], query: str, config: dict[str, Any]) -> str:
        from harness_tower.backends import accordion
        from harness_tower.backends import openai as oa
        from harness_tower.errors import TowerError

        ep = self.endpoints
        if name == "accordion":
            if not ep.accordion_checkpoint:
                raise TowerError(accordion.NO_CHECKPOINT)
            if not accordion._has_torch():
                raise TowerError("expert backend accordion: torch is not importable where the evaluation runs")
            backend = accordion.AccordionBackend(ep.accordion_checkpoint, config, meter=self._meters[name])
            return backend.answer(pairs, query)
        if not ep.openai_base_url:
            raise TowerError("expert backend openai: no endpoint configured (set experts.openai.base_url in the "
                             "run config, or OPENAI_BASE_URL where the evaluation runs)")
        cfg = oa.Config.for_endpoint(ep.openai_base_url, ep.openai_model, config, environ=self._env,
                                     timeout=float(ep.openai_timeout), retries=ep.openai_retries,
                                     concurrency=ep.openai_concurrency)
        return oa.OpenAIBackend(cfg, self._meters[name]).answer(pairs, query)


def _one_line(message: str) -> str:
    return " ".join(message.split())[:500]
