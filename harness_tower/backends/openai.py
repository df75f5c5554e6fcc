"""The `openai` expert backend: any OpenAI-compatible endpoint, with the standard library only.

The prompt is the top-k retrieved experience rows as few-shot examples (query -> value)
followed by the query (the fixation context), never a whole file. Requests have a timeout,
are retried with exponential backoff on 429 and 5xx (honouring Retry-After), pass a
cross-process concurrency limit (flock'd slot files), and well-formed answers are cached on
disk keyed by (endpoint, API kind, the whole request body), so a re-evaluation sends nothing.
Inside a sandbox the call is relayed by the recorder (`harness_tower.backends.relay`), which
runs this same code in the evaluating process with the endpoint of the run's configuration.

Where a request goes (base URL, model, key, timeout, retries, slots) is the trusted side's:
`Config.from_mapping` takes only sampling parameters from its mapping and the endpoint from
the environment (OPENAI_BASE_URL, TOWER_EXPERT_MODEL, OPENAI_API_KEY).

>>> cfg = Config.from_mapping({"temperature": 0.5}, environ={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1/"})
>>> cfg.chat_url, cfg.temperature, cfg.model
('http://127.0.0.1:8000/v1/chat/completions', 0.5, 'default')
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import pwd
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from harness_tower.backends import SAMPLING, UsageMeter, check_sampling, token_count
from harness_tower.ft import Experience, TowerError

if TYPE_CHECKING:
    from pathlib import Path
# Packages (pathlib, urllib, http, email) are imported where they are used: a sealed harness
# imports this module only to reach `relay.RelayBackend`, and may not list a package directory.

SYSTEM = ("You continue a terminal session. You are shown what the screen shows around where you "
          "look; answer with exactly the next line to type, nothing else.")
MAX_BACKOFF = 30.0
MAX_ANSWER_BYTES = 8 << 20  # a larger answer is refused, never read whole
RETRY_STATUS = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))

__all__ = ["SAMPLING", "Config", "EndpointError", "Exchange", "OpenAIBackend", "ResponseCache", "answer_of",
           "backend", "cache_key", "complete", "exchange", "replace", "request_body", "translate"]


def default_cache_dir() -> Path:
    # The account's home, not $HOME: a sandbox gives its harnesses a throwaway HOME.
    try:
        home = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        home = os.path.expanduser("~")
    from pathlib import Path

    return Path(home) / ".cache" / "harness-evolve" / "expert"


def cache_dir_from(env: Mapping[str, str]) -> Path | None:
    from pathlib import Path

    cache = env.get("TOWER_EXPERT_CACHE")
    if not cache:
        return default_cache_dir()
    return None if cache == "off" else Path(cache)


@dataclass(frozen=True)
class Config:
    """One endpoint and the parameters of its requests."""

    base_url: str
    model: str = "default"
    api_key: str = ""
    api: str = "chat"  # chat: /chat/completions; completions: /completions (a raw text prompt)
    temperature: float = 0.0
    max_tokens: int = 64
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 0.5
    concurrency: int = 2
    seed: int | None = None
    stop: tuple[str, ...] = ("\n",)
    cache_dir: Path | None = field(default_factory=default_cache_dir)  # None: no cache
    log_path: Path | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None) -> Config:
        """Sampling parameters from `config` (a genome's backend_config); the endpoint, model and
        key from OPENAI_BASE_URL / TOWER_EXPERT_MODEL / OPENAI_API_KEY."""
        env = os.environ if environ is None else environ
        base_url = env.get("OPENAI_BASE_URL")
        if not base_url:
            raise TowerError("expert backend openai: no endpoint configured (the run config's experts.openai.base_url, "
                             "or OPENAI_BASE_URL)")
        return cls.for_endpoint(base_url, env.get("TOWER_EXPERT_MODEL"), config, environ=env)

    @classmethod
    def for_endpoint(cls, base_url: str, model: str | None, sampling: Mapping[str, Any] | None = None, *,
                     environ: Mapping[str, str] | None = None, **transport: Any) -> Config:
        """An endpoint chosen by the trusted side, with sampling parameters checked against
        `SAMPLING`; key, cache and usage log from `environ` (default: this process's)."""
        env = os.environ if environ is None else environ
        why = check_sampling(sampling or {}, where="backend_config")
        if why:
            raise TowerError(f"expert backend openai: {why}")
        if not str(base_url).startswith(("http://", "https://")):
            raise TowerError("expert backend openai: the configured endpoint is not an http(s) URL")
        out = cls(base_url=str(base_url).rstrip("/"), model=str(model or "default"),
                  api_key=env.get("OPENAI_API_KEY", ""), cache_dir=cache_dir_from(env),
                  log_path=usage_log_path(env), **transport)
        return replace(out, **dict(sampling or {}))

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def completions_url(self) -> str:
        return f"{self.base_url}/completions"


def usage_log_path(env: Mapping[str, str]) -> Path | None:
    from pathlib import Path

    return Path(env["TOWER_EXPERT_LOG"]) if env.get("TOWER_EXPERT_LOG") else None


# --------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------
def examples(experience: Experience, query: str, topk: int) -> list[tuple[str, str]]:
    """The retrieved rows as (query, value) pairs, least similar first: the best sits next to the query."""
    return [(experience.rows[i][0], experience.rows[i][2]) for _, i in reversed(experience.ranked(query, topk))]


def chat_messages(shots: list[tuple[str, str]], query: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM}]
    for q, v in shots:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": v}]
    return messages + [{"role": "user", "content": query}]


def text_prompt(shots: list[tuple[str, str]], query: str) -> str:
    """A completion prompt: each example as its screen context, a `=>` line, then the answer."""
    parts = [f"{q}\n=> {v}\n\n" for q, v in shots]
    return "".join(parts) + f"{query}\n=> "


def request_body(cfg: Config, shots: list[tuple[str, str]], query: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": cfg.model, "temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
    if cfg.api == "chat":
        body["messages"] = chat_messages(shots, query)
    else:
        body["prompt"] = text_prompt(shots, query)
        body["stop"] = list(cfg.stop)
    if cfg.seed is not None:
        body["seed"] = cfg.seed
    return body


def answer_of(api: str, response: Any) -> str | None:
    """The answer's text when `response` is well formed for `api` (a JSON object whose
    choices[0] holds a string message.content / text), else None."""
    if not isinstance(response, dict):
        return None
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    if api == "chat":
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
    else:
        text = choice.get("text")
    return text if isinstance(text, str) else None


def answer_text(cfg: Config, response: Mapping[str, Any]) -> str:
    text = answer_of(cfg.api, response)
    if text is None:
        raise malformed(cfg)
    return text


def malformed(cfg: Config) -> TowerError:
    """What the endpoint said is never echoed: it would reach the harness."""
    where = "choices[0].message.content" if cfg.api == "chat" else "choices[0].text"
    return TowerError(f"expert backend openai: malformed answer from the endpoint (no string {where})")


def normalized(api: str, text: str, usage: Any) -> dict[str, Any]:
    """The parts of an answer that are kept (cached): the text and the token counts."""
    choice: dict[str, Any] = {"message": {"role": "assistant", "content": text}} if api == "chat" else {"text": text}
    raw = usage if isinstance(usage, dict) else {}
    return {"choices": [choice], "usage": {k: token_count(raw.get(k)) for k in
                                           ("prompt_tokens", "completion_tokens", "total_tokens")}}


# --------------------------------------------------------------------------------------
# Transport: cache, slots, retries
# --------------------------------------------------------------------------------------
def cache_material(cfg: Config, body: Mapping[str, Any]) -> dict[str, Any]:
    """What an answer depends on: the endpoint, the API kind and the whole request body
    (model, prompt or messages, every sampling parameter)."""
    return {"endpoint": cfg.base_url, "api": cfg.api, "body": {k: v for k, v in body.items() if k != "stream"}}


def cache_key(cfg: Config, body: Mapping[str, Any]) -> str:
    """(endpoint, API kind, request body) -> a stable name."""
    canon = json.dumps(cache_material(cfg, body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(canon.encode("utf-8"), digest_size=20).hexdigest()


class ResponseCache:
    """One JSON file per answer under `root/ab/abcdef....json`, written atomically. An entry
    counts only when it holds the very request asked (endpoint, API kind, body) and a
    well-formed answer to it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, material: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("request") != json.loads(json.dumps(material)):
            return None
        response = entry.get("response")
        api = str(material.get("api"))
        text = answer_of(api, response)
        if text is None:
            return None
        return normalized(api, text, response.get("usage"))  # type: ignore[union-attr]

    def put(self, key: str, material: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"request": material, "response": response, "time": time.time()},
                                      ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written only costs the next request


def lock_dir_for(cfg: Config) -> Path:
    import tempfile
    from pathlib import Path

    if cfg.cache_dir is not None:
        return cfg.cache_dir / "locks"
    return Path(tempfile.gettempdir()) / f"harness-evolve-{os.getuid()}" / "expert-locks"


@contextlib.contextmanager
def slot(lock_dir: Path, name: str, slots: int, timeout: float) -> Iterator[None]:
    """Hold one of `slots` flock'd files: at most `slots` requests to one endpoint at a time,
    across every process that shares the cache directory."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for i in range(slots):
            fd = os.open(lock_dir / f"{name}.{i}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        if time.monotonic() > deadline:
            raise TowerError(f"expert backend openai: no free request slot within {timeout:g}s "
                             f"({slots} in use)")
        time.sleep(0.02)


def retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), if any."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class EndpointError(TowerError):
    """A request that failed; `attempts` were sent. The message never quotes the endpoint's body."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


_OPENER: Any = None


def opener() -> Any:
    """urllib's opener without redirects: a 3xx is an answer (refused), never followed, so the
    request goes only where it was sent."""
    global _OPENER
    if _OPENER is None:
        import urllib.request

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
                return None

        _OPENER = urllib.request.build_opener(NoRedirect())
    return _OPENER


def _why_unreachable(reason: Any) -> str:
    """What failed when no HTTP answer came, in this machine's words (never the peer's)."""
    if isinstance(reason, TimeoutError):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    import ssl

    if isinstance(reason, ssl.SSLError):
        return "TLS failed"
    if isinstance(reason, OSError) and reason.errno is not None and reason.errno in errno.errorcode:
        return os.strerror(reason.errno).lower()
    return type(reason).__name__ if isinstance(reason, BaseException) else "no connection"


def post_json(cfg: Config, url: str, body: Mapping[str, Any],
              sleep: Callable[[float], None] = time.sleep) -> tuple[dict[str, Any], int]:
    """POST with retries; returns (the decoded answer, attempts). An EndpointError line on failure,
    saying what failed (HTTP status, timeout, refused) and never what the endpoint wrote."""
    import http.client
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    reason = "no attempt"
    attempts = 0
    for attempt in range(cfg.retries + 1):
        attempts = attempt + 1
        delay = min(MAX_BACKOFF, cfg.backoff * 2 ** attempt)
        try:
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            with opener().open(req, timeout=cfg.timeout) as resp:
                payload = resp.read(MAX_ANSWER_BYTES + 1)
            if len(payload) > MAX_ANSWER_BYTES:
                raise EndpointError(f"expert backend openai: the endpoint's answer is larger than "
                                    f"{MAX_ANSWER_BYTES} bytes", attempts)
            try:
                answer = json.loads(payload)
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                raise EndpointError("expert backend openai: the endpoint answered with something that is not a "
                                    "JSON object", attempts)
            return answer, attempts
        except urllib.error.HTTPError as exc:
            exc.close()  # the body is never read: it is the endpoint's, not ours to pass on
            if exc.code not in RETRY_STATUS:
                raise EndpointError(f"expert backend openai: the endpoint refused the request: HTTP {exc.code}",
                                    attempts) from None
            reason = f"HTTP {exc.code}"
            hinted = retry_after(exc.headers)
            if hinted is not None:
                delay = min(MAX_BACKOFF, hinted)
        except urllib.error.URLError as exc:
            why = _why_unreachable(exc.reason)
            reason = f"no answer within {cfg.timeout:g}s" if why == "timeout" else f"cannot reach it ({why})"
        except TimeoutError:
            reason = f"no answer within {cfg.timeout:g}s"
        except OSError as exc:  # connection reset mid-answer and the like
            reason = f"connection failed ({_why_unreachable(exc)})"
        except http.client.HTTPException:  # a status line or header that is not HTTP
            reason = "the answer is not HTTP"
        if attempt < cfg.retries:
            sleep(delay)
    raise EndpointError(f"expert backend openai: the endpoint failed: {reason} (after {attempts} attempt(s))",
                        attempts)


def log_usage(cfg: Config, record: Mapping[str, Any]) -> None:
    """Append to TOWER_EXPERT_LOG (the evaluating process's own file, outside any sandbox)."""
    if cfg.log_path is None:
        return
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    try:
        cfg.log_path.parent.mkdir(parents=True, exist_ok=True)
        dir_fd = os.open(cfg.log_path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fd = os.open(cfg.log_path.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644,
                         dir_fd=dir_fd)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # accounting must never break the harness


@dataclass(frozen=True)
class Exchange:
    """One answered request: the (normalized, well-formed) answer and what it cost."""

    response: dict[str, Any]
    text: str
    cached: bool
    attempts: int
    latency_s: float
    key: str

    @property
    def usage(self) -> dict[str, int]:
        raw = self.response.get("usage")
        return {k: token_count(raw.get(k)) if isinstance(raw, dict) else 0
                for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def exchange(cfg: Config, body: Mapping[str, Any], meter: UsageMeter | None = None) -> Exchange:
    """The answer to one request body: from the cache, else from the endpoint. Only a
    well-formed answer is returned and cached; usage goes to `meter` and TOWER_EXPERT_LOG."""
    material = cache_material(cfg, body)
    key = cache_key(cfg, body)
    cache = ResponseCache(cfg.cache_dir) if cfg.cache_dir is not None else None
    start = time.monotonic()
    stored = cache.get(key, material) if cache else None
    if stored is not None:
        done = Exchange(stored, str(answer_of(cfg.api, stored)), True, 0, time.monotonic() - start, key)
    else:
        url = cfg.chat_url if cfg.api == "chat" else cfg.completions_url
        name = hashlib.blake2b(cfg.base_url.encode(), digest_size=8).hexdigest()
        try:
            with slot(lock_dir_for(cfg), name, cfg.concurrency, timeout=cfg.timeout * (cfg.retries + 1) + 60):
                raw, attempts = post_json(cfg, url, body)
        except EndpointError as exc:
            if meter is not None:
                meter.add(cached=False, attempts=exc.attempts)
            raise
        text = answer_of(cfg.api, raw)
        if text is None:
            if meter is not None:
                meter.add(cached=False, attempts=attempts)
            raise malformed(cfg)
        response = normalized(cfg.api, text, raw.get("usage"))
        if cache:
            cache.put(key, material, response)
        done = Exchange(response, text, False, attempts, time.monotonic() - start, key)
    usage = done.usage
    if meter is not None:
        meter.add(cached=done.cached, attempts=done.attempts, prompt_tokens=usage["prompt_tokens"],
                  completion_tokens=usage["completion_tokens"])
    log_usage(cfg, {"time": round(time.time(), 6), "backend": "openai", "model": cfg.model, "api": cfg.api,
                    "cached": done.cached, "attempts": done.attempts, "latency_s": round(done.latency_s, 6),
                    **usage, "key": key})
    return done


def complete(cfg: Config, body: Mapping[str, Any]) -> dict[str, Any]:
    """The (normalized) answer to one request body: from the cache, else from the endpoint."""
    return exchange(cfg, body).response


class OpenAIBackend:
    """A translate function bound to one endpoint configuration; usage into `meter` if given."""

    def __init__(self, cfg: Config, meter: UsageMeter | None = None) -> None:
        if cfg.api not in ("chat", "completions"):
            raise TowerError(f"expert backend openai: api must be 'chat' or 'completions', got {cfg.api!r}")
        self.cfg, self.meter = cfg, meter

    def __call__(self, experience: Experience, query: str, topk: int) -> str:
        return self.answer(examples(experience, query, topk), query)

    def answer(self, shots: list[tuple[str, str]], query: str) -> str:
        """The model's next line after these (query, value) examples and the query."""
        text = exchange(self.cfg, request_body(self.cfg, shots, query), self.meter).text
        # One line: the first non-empty one (models like to open with a newline).
        lines = text.replace("\r", "").split("\n")
        return next((line.rstrip() for line in lines if line.strip()), "")


def backend(config: Mapping[str, Any]) -> Callable[[Experience, str, int], str]:
    """Inside a sandbox the request is relayed by the recorder (no network there); else direct,
    to the endpoint this process's environment names."""
    from harness_tower.backends.relay import RelayBackend, in_sandbox

    return RelayBackend("openai", config) if in_sandbox() else OpenAIBackend(Config.from_mapping(config))


def translate(experience: Experience, query: str, topk: int) -> str:
    """The backend configured from the environment alone (OPENAI_BASE_URL, ...)."""
    return backend({})(experience, query, topk)
