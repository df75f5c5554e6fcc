"""`evolve serve`: a MicroAccordion checkpoint behind the OpenAI wire format, checked with the
official `openai` client (no mocked HTTP)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openai
import pytest

from tests.harness_tower.expert_servers import ROOT, make_checkpoint, served_checkpoint  # noqa: F401

pytestmark = pytest.mark.slow


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=30)


def test_models_lists_the_served_checkpoint(served_checkpoint: str) -> None:  # noqa: F811
    models = client(served_checkpoint).models.list()
    assert [m.id for m in models.data] == ["tiny"]
    assert client(served_checkpoint).models.retrieve("tiny").id == "tiny"


def test_completions_and_streamed_completions_give_the_same_text(served_checkpoint: str) -> None:  # noqa: F811
    c = client(served_checkpoint)
    done = c.completions.create(model="tiny", prompt="$ echo hi\n", max_tokens=12, temperature=0.8, seed=7)
    assert done.object == "text_completion" and done.choices[0].finish_reason in ("length", "stop")
    assert done.usage is not None and done.usage.prompt_tokens == len(b"$ echo hi\n")
    assert done.usage.completion_tokens <= 12
    pieces, finish = [], None
    for chunk in c.completions.create(model="tiny", prompt="$ echo hi\n", max_tokens=12, temperature=0.8,
                                      seed=7, stream=True):
        pieces.append(chunk.choices[0].text)
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces) == done.choices[0].text
    assert finish == done.choices[0].finish_reason


def test_chat_completions_stream_with_usage(served_checkpoint: str) -> None:  # noqa: F811
    c = client(served_checkpoint)
    messages = [{"role": "system", "content": "next line"}, {"role": "user", "content": "$ ls"}]
    done = c.chat.completions.create(model="tiny", messages=messages, max_tokens=10, temperature=0)  # type: ignore[arg-type]
    assert done.object == "chat.completion" and done.choices[0].message.role == "assistant"
    text, usage, roles = "", None, []
    stream = c.chat.completions.create(model="tiny", messages=messages, max_tokens=10, temperature=0,  # type: ignore[arg-type]
                                       stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            roles.append(choice.delta.role)
            text += choice.delta.content or ""
    assert text == done.choices[0].message.content
    assert "assistant" in roles
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stop_strings_end_the_answer_before_them(served_checkpoint: str) -> None:  # noqa: F811
    c = client(served_checkpoint)
    free = c.completions.create(model="tiny", prompt="abc", max_tokens=40, temperature=0).choices[0].text
    stop = free[5:7] if len(free) > 7 else free[-1:]
    cut = c.completions.create(model="tiny", prompt="abc", max_tokens=40, temperature=0, stop=[stop]).choices[0]
    assert cut.text == free[:free.find(stop)] and cut.finish_reason == "stop"


def test_bad_requests_get_openai_errors(served_checkpoint: str) -> None:  # noqa: F811
    c = client(served_checkpoint)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        c.completions.create(model="tiny", prompt="x", max_tokens=100000)
    with pytest.raises(openai.BadRequestError, match="messages"):
        c.chat.completions.create(model="tiny", messages=[])
    with pytest.raises(openai.NotFoundError):
        c.post("/embeddings", body={"input": "x"}, cast_to=object)


def test_api_key_is_enforced_when_given(short_tmp: Path) -> None:
    import threading

    from harness_tower.serve import ModelServer, load_model, make_server

    ck = make_checkpoint(short_tmp / "k.pt")
    httpd = make_server(ModelServer(load_model(str(ck)), "k"), "127.0.0.1", 0, api_key="sesame")
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
        assert openai.OpenAI(base_url=base, api_key="sesame", max_retries=0).models.list().data[0].id == "k"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("content, message", [
    (None, "checkpoint not found"),
    (b"not a torch file", "checkpoint unreadable"),
])
def test_a_bad_checkpoint_is_one_clear_line(short_tmp: Path, content: bytes | None, message: str) -> None:
    path = short_tmp / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "evolve.cli", "serve", str(path), "--port", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
