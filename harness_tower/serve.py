"""`evolve serve CHECKPOINT`: a MicroAccordion checkpoint as an OpenAI-compatible HTTP server.

Routes: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/completions` and
`POST /v1/chat/completions`, each with `"stream": true` as server-sent events ending in
`data: [DONE]`. The model is byte-level, so a token is a byte: usage counts bytes. Chat
messages are laid out as `role: content` lines ending in `assistant: `. Any model name is
accepted (answers name the served one). Standard library HTTP; torch loads with the model.

>>> # server = ModelServer(load_model("ck.pt"), "ck"); httpd = make_server(server, "127.0.0.1", 0)
"""
from __future__ import annotations

import codecs
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness_tower.errors import TowerError

MAX_BODY = 1 << 20
MAX_NEW = 4096
DEFAULT_MAX_TOKENS = 16


class RequestError(TowerError):
    """A request the server refuses: answered as an OpenAI-style error object."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param = status, param


def load_model(path: str) -> Any:
    """The checkpoint's model on the CPU, in eval mode; AccordionError (one line) if unreadable."""
    from accordion.checkpoint import load_checkpoint

    model = load_checkpoint(path).model
    model.eval()
    return model


class ModelServer:
    """Sampling from one model, one request at a time (the model is not shared across threads)."""

    def __init__(self, model: Any, model_id: str) -> None:
        self.model, self.model_id = model, model_id
        self.created = int(time.time())
        self.lock = threading.Lock()

    def sample(self, prompt: bytes, max_new: int, temperature: float, top_k: int | None,
               seed: int) -> Iterator[bytes]:
        """Bytes after `prompt`, one at a time; the same as `MicroAccordion.generate` for a seed."""
        with self.lock:
            yield from self.model.stream(prompt, max_new, temperature=temperature, top_k=top_k, seed=seed)

    def generate(self, prompt: str, params: dict[str, Any]) -> Iterator[str]:
        """Text pieces of the answer (UTF-8 decoded incrementally), cut at the first stop string."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops: list[str] = params["stop"]
        text = ""
        sent = 0
        hold = max((len(s) for s in stops), default=1) - 1  # may still become a stop string
        params["finish_reason"] = "length"
        for byte in self.sample(prompt.encode("utf-8"), params["max_tokens"], params["temperature"],
                                params["top_k"], params["seed"]):
            params["completion_tokens"] += 1
            text += decoder.decode(byte)
            cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                if cut > sent:
                    yield text[sent:cut]
                params["finish_reason"] = "stop"
                return
            if len(text) - hold > sent:
                yield text[sent:len(text) - hold]
                sent = len(text) - hold
        text += decoder.decode(b"", final=True)
        if len(text) > sent:
            yield text[sent:]


def chat_prompt(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list", param="messages")
    lines = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError(f"messages[{i}] must be an object with a role", param="messages")
        content = m.get("content", "")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise RequestError(f"messages[{i}].content must be a string", param="messages")
        lines.append(f"{m['role']}: {content}\n")
    return "".join(lines) + "assistant: "


def parse_params(body: dict[str, Any]) -> dict[str, Any]:
    def number(name: str, default: float, lo: float, hi: float) -> float:
        value = body.get(name, default)
        if value is None:
            value = default
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
            raise RequestError(f"'{name}' must be a number in {lo:g}..{hi:g}", param=name)
        return float(value)

    max_tokens = body.get("max_tokens", body.get("max_completion_tokens")) or DEFAULT_MAX_TOKENS
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_NEW:
        raise RequestError(f"'max_tokens' must be an integer in 1..{MAX_NEW}", param="max_tokens")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise RequestError("'stop' must be a string or a list of at most 4 non-empty strings", param="stop")
    if body.get("n", 1) not in (1, None):
        raise RequestError("only n=1 is supported", param="n")
    seed = body.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise RequestError("'seed' must be an integer", param="seed")
    top_k = body.get("top_k")
    return {"max_tokens": max_tokens, "temperature": number("temperature", 1.0, 0.0, 2.0), "stop": stop,
            "seed": seed % (2 ** 63), "top_k": top_k if isinstance(top_k, int) and top_k > 0 else None,
            "completion_tokens": 0, "finish_reason": "length"}


class Handler(BaseHTTPRequestHandler):
    server_version = "harness-evolve-serve/0.1"
    protocol_version = "HTTP/1.1"

    @property
    def app(self) -> ModelServer:
        return self.server.app  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise
        return

    # -- routing --------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _guard(self, handler: Any) -> None:
        try:
            self._authorize()
            handler()
        except RequestError as exc:
            self._error(exc.status, exc.message, exc.param)
        except Exception as exc:  # noqa: BLE001 - a request boundary: answer, keep serving
            self._error(500, f"{type(exc).__name__}: {exc}", None, "server_error")

    def _authorize(self) -> None:
        key = getattr(self.server, "api_key", None)
        if key and self.headers.get("Authorization", "") != f"Bearer {key}":
            raise RequestError("invalid API key", status=401)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        model = {"id": self.app.model_id, "object": "model", "created": self.app.created, "owned_by": "harness-evolve"}
        if path == "/v1/models":
            self._json(200, {"object": "list", "data": [model]})
        elif path.startswith("/v1/models/"):
            self._json(200, {**model, "id": path[len("/v1/models/"):]})
        elif path in ("", "/health"):
            self._json(200, {"status": "ok", "model": self.app.model_id})
        else:
            raise RequestError(f"no route GET {path}", status=404)

    def _post(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("/v1/completions", "/v1/chat/completions"):
            raise RequestError(f"no route POST {path}", status=404)
        body = self._body()
        chat = path.endswith("chat/completions")
        if chat:
            prompt = chat_prompt(body.get("messages"))
        else:
            prompt = body.get("prompt", "")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise RequestError("'prompt' must be a string (or a list of one)", param="prompt")
        params = parse_params(body)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(chat, prompt, params, include_usage)
        else:
            text = "".join(self.app.generate(prompt, params))
            choice: dict[str, Any] = {"index": 0, "finish_reason": params["finish_reason"], "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            self._json(200, {"id": _id(chat), "object": "chat.completion" if chat else "text_completion",
                             "created": int(time.time()), "model": self.app.model_id, "choices": [choice],
                             "usage": _usage(prompt, params)})

    # -- bodies ---------------------------------------------------------------------------
    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise RequestError("bad Content-Length") from None
        if length > MAX_BODY:
            raise RequestError(f"request body over {MAX_BODY} bytes", status=413)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise RequestError("request body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestError("request body must be a JSON object")
        return body

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, param: str | None, kind: str = "invalid_request_error") -> None:
        self._json(status, {"error": {"message": message, "type": kind, "param": param,
                                      "code": HTTPStatus(status).phrase.lower().replace(" ", "_")}})

    def _stream(self, chat: bool, prompt: str, params: dict[str, Any], include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        ident, created = _id(chat), int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"

        def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {"id": ident, "object": kind, "created": created, "model": self.app.model_id,
                     "choices": choices, **extra}
            self.wfile.write(b"data: " + json.dumps(chunk).encode("utf-8") + b"\n\n")
            self.wfile.flush()

        def choice(piece: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
            if chat:
                delta: dict[str, Any] = {"role": "assistant"} if role else {}
                if piece is not None:
                    delta["content"] = piece
                return {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {"index": 0, "text": piece or "", "finish_reason": finish, "logprobs": None}

        try:
            if chat:
                event([choice("", None, role=True)])
            for piece in self.app.generate(prompt, params):
                event([choice(piece, None)])
            event([choice(None if chat else "", params["finish_reason"])])
            if include_usage:
                event([], usage=_usage(prompt, params))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away mid-stream


def _id(chat: bool) -> str:
    return f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"


def _usage(prompt: str, params: dict[str, Any]) -> dict[str, int]:
    p = len(prompt.encode("utf-8"))
    return {"prompt_tokens": p, "completion_tokens": params["completion_tokens"],
            "total_tokens": p + params["completion_tokens"]}


def make_server(app: ModelServer, host: str = "127.0.0.1", port: int = 0,
                api_key: str | None = None) -> ThreadingHTTPServer:
    """A bound (not yet serving) server; `port=0` picks a free port (see `server_address`)."""
    try:
        httpd = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise TowerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    httpd.daemon_threads = True
    httpd.app = app  # type: ignore[attr-defined]
    httpd.api_key = api_key  # type: ignore[attr-defined]
    return httpd
