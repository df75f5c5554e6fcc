from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from evolve.cli import main

TINY = ["--context", "16", "--d-model", "16", "--batch-size", "4", "--threads", "1", "--eval-every", "5"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["accordion", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.slow
def test_train_query_grow_inspect_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, grown = tmp_path / "m.pt", tmp_path / "g.pt"
    rc, out, _ = _run(capsys, "train", "--steps", "6", "--out", str(ckpt), "--seed", "1", *TINY)
    assert rc == 0 and ckpt.is_file() and "saved" in out
    rc, a, _ = _run(capsys, "query", str(ckpt), "--prompt", "hello", "--max-bytes", "20", "--seed", "3")
    rc2, b, _ = _run(capsys, "query", str(ckpt), "--prompt", "hello", "--max-bytes", "20", "--seed", "3",
                     "--kernel-db")
    assert rc == rc2 == 0 and a == b and len(a.encode("utf-8", errors="replace")) >= 20
    rc, out, _ = _run(capsys, "grow", str(ckpt), "--out", str(grown), "--blocks", "1", "--head-steps", "1",
                      "--width-delta", "8")
    report = json.loads(out)
    assert rc == 0 and report["max_logit_drift"] <= 1e-5
    assert report["after"] == {**report["before"], "d_model": 24, "n_blocks": 2, "n_heads": 2, "generation": 3}
    rc, out, _ = _run(capsys, "inspect", str(grown))
    info = json.loads(out)
    assert rc == 0 and info["sizes"]["d_model"] == 24 and info["generation"] == 3
    assert info["parameters"] > 0 and 0 < info["bytes_4bit"] < 4 * info["parameters"]
    assert {"hits", "bypasses", "false_positives", "mean_divergence"} <= set(info["kernel_db"])
    assert info["meta"]["step"] == 6 and info["meta"]["grown"][0]["blocks"] == 1
    rc, out, _ = _run(capsys, "query", str(grown), "--prompt", "hello", "--max-bytes", "20", "--seed", "3")
    assert rc == 0 and out == a  # the grown model samples the same bytes
    rc, out, _ = _run(capsys, "train", "--steps", "2", "--resume", str(grown), "--out", str(grown), *TINY)
    assert rc == 0 and "d_model 24" in out


@pytest.mark.slow
def test_train_on_file_and_trajectory_repo(tmp_path: Path, git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 20)
    (git_repo / "h1.py").write_text("print('hello world')\n" * 10)
    subprocess.run(["git", "-C", str(git_repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(git_repo), "commit", "-q", "-m", "h1"], check=True)
    out_ckpt = tmp_path / "f.pt"
    rc, _, _ = _run(capsys, "train", "--steps", "3", "--corpus", str(text), str(git_repo), "--out", str(out_ckpt),
                    *TINY)
    assert rc == 0
    rc, out, _ = _run(capsys, "inspect", str(out_ckpt))
    assert json.loads(out)["meta"]["corpus"]["documents"] == 2


@pytest.mark.parametrize("argv, needle", [
    (["inspect", "{tmp}/missing.pt"], "checkpoint not found"),
    (["query", "{tmp}/junk.pt", "--prompt", "x"], "checkpoint unreadable"),
    (["grow", "{tmp}/junk.pt", "--out", "{tmp}/o.pt"], "nothing to grow"),
    (["train", "--steps", "-1", "--out", "{tmp}/o.pt"], "--steps must be >= 0"),
    (["train", "--corpus", "{tmp}/nope.txt", "--out", "{tmp}/o.pt"], "no such file"),
    (["train", "--steps", "1", "--out", "{tmp}/no/dir/o.pt"], "does not exist"),
    (["train", "--steps", "1", "--d-model", "30", "--heads", "4", "--out", "{tmp}/o.pt"], "not divisible"),
    (["query", "{tmp}/junk.pt", "--prompt", "x", "--max-bytes", "-3"], "--max-bytes"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          argv: list[str], needle: str) -> None:
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    rc, out, err = _run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
