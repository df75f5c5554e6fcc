"""The `openai` expert backend: any OpenAI-compatible endpoint, with the standard library only.

The prompt is the top-k retrieved experience rows as few-shot examples (query -> value)
followed by the query (the fixation context), never a whole file. Requests have a timeout,
are retried with exponential backoff on 429 and 5xx (honouring Retry-After), pass a
cross-process concurrency limit (flock'd slot files), and their answers are cached on disk
keyed by (model, prompt, parameters), so a re-evaluation sends nothing. Usage is appended to
a JSONL log (see `harness_tower.backends`). Inside a sandbox the call is relayed by the
recorder (`harness_tower.backends.relay`), which runs this same code outside the sandbox.

>>> cfg = Config.from_mapping({"base_url": "http://127.0.0.1:8000/v1", "model": "m"}, environ={})
>>> cfg.chat_url, cfg.temperature
('http://127.0.0.1:8000/v1/chat/completions', 0.0)
"""
from __future__ import annotations

import contextlib
import email.utils
import fcntl
import hashlib
import json
import os
import pwd
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness_tower.ft import Experience, TowerError

SYSTEM = ("You continue a terminal session. You are shown what the screen shows around where you "
          "look; answer with exactly the next line to type, nothing else.")
MAX_BACKOFF = 30.0
RETRY_STATUS = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))


def default_cache_dir() -> Path:
    # The account's home, not $HOME: a sandbox gives its harnesses a throwaway HOME.
    try:
        home = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        home = os.path.expanduser("~")
    return Path(home) / ".cache" / "harness-evolve" / "expert"


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
        """Genome `backend_config` first, then OPENAI_BASE_URL / OPENAI_API_KEY / TOWER_EXPERT_MODEL."""
        env = os.environ if environ is None else environ
        cfg = dict(config or {})
        base_url = cfg.pop("base_url", None) or env.get("OPENAI_BASE_URL")
        if not base_url:
            raise TowerError("expert backend openai: no endpoint (set backend_config.base_url or OPENAI_BASE_URL)")
        cache = env.get("TOWER_EXPERT_CACHE")
        out = cls(base_url=str(base_url).rstrip("/"), model=str(cfg.pop("model", None) or
                                                              env.get("TOWER_EXPERT_MODEL") or "default"),
                  api_key=env.get("OPENAI_API_KEY", ""),
                  cache_dir=(None if cache == "off" else Path(cache)) if cache else default_cache_dir(),
                  log_path=usage_log_path(env))
        known = {"api", "temperature", "max_tokens", "timeout", "retries", "concurrency", "seed"}
        unknown = sorted(set(cfg) - known - {"checkpoint"})
        if unknown:
            raise TowerError(f"expert backend openai: unknown config key(s) {', '.join(unknown)}")
        return replace(out, **{k: v for k, v in cfg.items() if k in known})

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def completions_url(self) -> str:
        return f"{self.base_url}/completions"


def usage_log_path(env: Mapping[str, str]) -> Path | None:
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


def answer_text(cfg: Config, response: Mapping[str, Any]) -> str:
    try:
        choice = response["choices"][0]
        text = choice["message"]["content"] if cfg.api == "chat" else choice["text"]
    except (KeyError, IndexError, TypeError):
        raise TowerError(f"expert backend openai: malformed answer from {cfg.base_url}: "
                         f"{json.dumps(response)[:200]}") from None
    return str(text or "")


# --------------------------------------------------------------------------------------
# Transport: cache, slots, retries
# --------------------------------------------------------------------------------------
def cache_key(api: str, body: Mapping[str, Any]) -> str:
    """(model, prompt, parameters) -> a stable name; the endpoint's address is not part of it."""
    canon = json.dumps({"api": api, **{k: v for k, v in body.items() if k != "stream"}},
                       sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(canon.encode("utf-8"), digest_size=20).hexdigest()


class ResponseCache:
    """One JSON file per answer under `root/ab/abcdef....json`, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry.get("response") if isinstance(entry, dict) else None

    def put(self, key: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"request": request, "response": response, "time": time.time()},
                                      ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written only costs the next request


@contextlib.contextmanager
def slot(lock_dir: Path, name: str, slots: int, timeout: float) -> Iterator[None]:
    """Hold one of `slots` flock'd files: at most `slots` requests to one endpoint at a time,
    across every process that shares the cache directory."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for i in range(slots):
            fd = os.open(lock_dir / f"{name}.{i}.lock", os.O_RDWR | os.O_CREAT, 0o600)
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
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def post_json(cfg: Config, url: str, body: Mapping[str, Any],
              sleep: Callable[[float], None] = time.sleep) -> tuple[dict[str, Any], int]:
    """POST with retries; returns (the decoded answer, attempts). One TowerError line on failure."""
    data = json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    reason = "no attempt"
    for attempt in range(cfg.retries + 1):
        delay = min(MAX_BACKOFF, cfg.backoff * 2 ** attempt)
        try:
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=cfg.timeout) as resp:
                payload = resp.read()
            try:
                answer = json.loads(payload)
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                raise TowerError(f"expert backend openai: {url} answered with something that is not a JSON "
                                 f"object: {payload[:120]!r}")
            return answer, attempt + 1
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code not in RETRY_STATUS:
                raise TowerError(f"expert backend openai: {url} refused the request: HTTP {exc.code} {detail}") from None
            reason = f"HTTP {exc.code} {detail}".strip()
            hinted = retry_after(exc.headers)
            if hinted is not None:
                delay = min(MAX_BACKOFF, hinted)
        except urllib.error.URLError as exc:
            reason = f"cannot reach it ({getattr(exc, 'reason', exc)})"
        except TimeoutError:
            reason = f"no answer within {cfg.timeout:g}s"
        except OSError as exc:  # connection reset mid-answer and the like
            reason = f"connection failed ({exc.strerror or exc})"
        if attempt < cfg.retries:
            sleep(delay)
    raise TowerError(f"expert backend openai: {url}: {reason} (after {cfg.retries + 1} attempt(s))")


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("error")
        return str(message or exc.reason or "")[:200]
    except (ValueError, OSError, AttributeError):
        return str(exc.reason or "")[:200]


def log_usage(cfg: Config, record: Mapping[str, Any]) -> None:
    if cfg.log_path is None:
        return
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    try:
        cfg.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Never through a symlink: a relayed log lies in a work tree that a harness controls.
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


def complete(cfg: Config, body: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to one request body: from the cache, else from the endpoint (then cached)."""
    key = cache_key(cfg.api, body)
    cache = ResponseCache(cfg.cache_dir) if cfg.cache_dir is not None else None
    start = time.monotonic()
    stored = cache.get(key) if cache else None
    cached, attempts = stored is not None, 0
    if isinstance(stored, dict):
        response = stored
    else:
        url = cfg.chat_url if cfg.api == "chat" else cfg.completions_url
        lock_dir = (cfg.cache_dir or Path("/tmp")) / "locks"
        name = hashlib.blake2b(cfg.base_url.encode(), digest_size=8).hexdigest()
        with slot(lock_dir, name, cfg.concurrency, timeout=cfg.timeout * (cfg.retries + 1) + 60):
            response, attempts = post_json(cfg, url, body)
        if cache:
            cache.put(key, body, response)
    raw = response.get("usage")
    usage: dict[str, Any] = raw if isinstance(raw, dict) else {}
    log_usage(cfg, {"time": round(time.time(), 6), "backend": "openai", "model": cfg.model, "api": cfg.api,
                    "cached": cached, "attempts": attempts, "latency_s": round(time.monotonic() - start, 6),
                    "prompt_tokens": usage.get("prompt_tokens", 0), "completion_tokens":
                    usage.get("completion_tokens", 0), "total_tokens": usage.get("total_tokens", 0), "key": key})
    return response


class OpenAIBackend:
    """A translate function bound to one endpoint configuration."""

    def __init__(self, cfg: Config) -> None:
        if cfg.api not in ("chat", "completions"):
            raise TowerError(f"expert backend openai: api must be 'chat' or 'completions', got {cfg.api!r}")
        self.cfg = cfg

    def __call__(self, experience: Experience, query: str, topk: int) -> str:
        return self.answer(examples(experience, query, topk), query)

    def answer(self, shots: list[tuple[str, str]], query: str) -> str:
        """The model's next line after these (query, value) examples and the query."""
        text = answer_text(self.cfg, complete(self.cfg, request_body(self.cfg, shots, query)))
        # One line: the first non-empty one (models like to open with a newline).
        lines = text.replace("\r", "").split("\n")
        return next((line.rstrip() for line in lines if line.strip()), "")


def backend(config: Mapping[str, Any]) -> Callable[[Experience, str, int], str]:
    """Inside a sandbox the request is relayed by the recorder (no network there); else direct."""
    from harness_tower.backends.relay import RelayBackend, in_sandbox

    return RelayBackend("openai", config) if in_sandbox() else OpenAIBackend(Config.from_mapping(config))


def translate(experience: Experience, query: str, topk: int) -> str:
    """The backend configured from the environment alone (OPENAI_BASE_URL, ...)."""
    return backend({})(experience, query, topk)
