"""Capture a live tmux session, harvest it into experience, and evaluate a tower built from it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness_tower.capture import CaptureError, SessionCapture, infer_keys, split_sends
from harness_tower.evaluate import evaluate
from harness_tower.harvest import (
    HarvestError,
    harvest,
    load_experience,
    observation,
    seed_genome,
)
from harness_tower.tasks import load_suite
from tests.harness_tower.conftest import git, one_task, typing_genome
from tests.harness_tower.expert_servers import ROOT


# -- inference of keys from screens ----------------------------------------------------------
@pytest.mark.parametrize("old, old_now, new, moved, keys", [
    ("$ ", "$ ls -l", "$ ls -l", False, [("text", "ls -l")]),
    ("$ ls -lx", "$ ls -l", "$ ls -l", False, [("ctrl", "BSpace")]),
    ("$ ls -x", "$ ls -ly", "$ ls -ly", False, [("ctrl", "BSpace"), ("text", "ly")]),
    ("$ ls", "$ ls", "$ ", True, [("ctrl", "Enter")]),
    ("$ l", "$ ls", "$ ", True, [("text", "s"), ("ctrl", "Enter")]),
    ("$ sleep 9", "$ sleep 9^C", "$ ", True, [("ctrl", "C-c")]),
    ("$ echo a", "$ echo a", "$ echo b", True, [("ctrl", "Enter"), ("text", "echo b")]),
    ("", "$", "$", False, [("ctrl", "C-d")]),
])
def test_keys_are_inferred_from_the_cursor_line(old: str, old_now: str, new: str, moved: bool,
                                                keys: list[tuple[str, str]]) -> None:
    assert infer_keys(old, old_now, new, moved, "$ ") == keys


def test_long_text_is_split_into_sends_of_at_most_16_characters() -> None:
    sends = split_sends([("text", "x" * 40), ("ctrl", "Enter")])
    assert [len(k) for _, k in sends] == [16, 16, 8, 5]


def test_observations_rewrite_the_captured_prompt() -> None:
    assert observation("user@box:~$ ls\na\nuser@box:~$ \n\n", "user@box:~$ ") == "$"
    assert observation("user@box:~$ echo hi", "user@box:~$ ") == "$ echo hi"


# -- a live session -----------------------------------------------------------------------------
def tmux(sock: Path, *args: str) -> str:
    return subprocess.run(["tmux", "-S", str(sock), *args], check=True, capture_output=True, text=True).stdout


def wait_for(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_session(sock: Path, name: str = "work") -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(sock.parent), "TERM": "xterm", "LANG": "C.UTF-8"}
    subprocess.run(["tmux", "-S", str(sock), "-f", "/dev/null", "new-session", "-d", "-s", name, "-x", "100",
                    "-y", "30", "env PS1='$ ' bash --norc --noprofile"], check=True, env=env)
    wait_for("the prompt", lambda: tmux(sock, "capture-pane", "-p", "-t", name).startswith("$"))


def start_capture(sock: Path, out: Path, name: str = "work") -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "evolve.cli", "capture", "--session", name, "--out", str(out),
                             "--socket", str(sock)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    wait_for("the capture to attach", lambda: tmux(sock, "list-clients", "-t", name).strip() != "")
    return proc


def type_task(sock: Path, name: str = "work") -> None:
    """A person at the keyboard: a command typed in two bursts, a typo fixed, then Enter."""
    def screen() -> str:
        return tmux(sock, "capture-pane", "-p", "-t", name)

    tmux(sock, "send-keys", "-t", name, "-l", "echo capt")
    wait_for("the first burst", lambda: "echo capt" in screen())
    time.sleep(0.3)  # a person pauses between bursts: each burst is its own observation
    tmux(sock, "send-keys", "-t", name, "-l", "ured tasj")
    wait_for("the typo", lambda: "tasj" in screen())
    time.sleep(0.3)
    tmux(sock, "send-keys", "-t", name, "BSpace")
    wait_for("the fix", lambda: "tasj" not in screen())
    time.sleep(0.3)
    tmux(sock, "send-keys", "-t", name, "-l", "k")
    wait_for("the command", lambda: "$ echo captured task" in screen())
    time.sleep(0.2)
    tmux(sock, "send-keys", "-t", name, "Enter")
    wait_for("the output", lambda: "\ncaptured task" in screen())
    time.sleep(0.3)


@pytest.mark.tmux
@pytest.mark.slow
def test_capture_harvest_genome_evaluation_reproduces_the_captured_task(short_tmp: Path) -> None:
    sock, out = short_tmp / "t.sock", short_tmp / "captured"
    start_session(sock)
    try:
        proc = start_capture(sock, out)
        type_task(sock)
        tmux(sock, "kill-session", "-t", "work")  # the session ends: so does the capture
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        assert "the session ended" in (proc.stderr.read() if proc.stderr else "")
    finally:
        subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True, check=False)

    subjects = git(out, "log", "--reverse", "--format=%s").splitlines()
    assert subjects[0] == "init" and subjects[-1] == "done"
    keys = [json.loads(line.split(": ", 1)[1]) for line in
            git(out, "log", "--reverse", "--format=%(trailers:key=Keys,valueonly=false)").splitlines() if line]
    assert "".join(k for k in keys if k not in ("BSpace", "Enter")).replace("j", "", 1) == "echo captured task"
    assert keys[-1] == "Enter" and "BSpace" in keys
    import validators
    metrics = validators.score(out)["metrics"]
    assert metrics["keys_audit"] == 0

    experience, suite_file = short_tmp / "experience.json", short_tmp / "harvested.yaml"
    run = subprocess.run([sys.executable, "-m", "evolve.cli", "harvest", str(out), "--out", str(experience),
                          "--tasks-out", str(suite_file), "--instruction", "Say that the task was captured."],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    data = load_experience(experience)
    assert data["tasks"] == [{"command": "echo captured task", "expected": "captured task"}]
    decision = {q: v for q, _, v, _ in data["experience"]["decision"]}
    assert decision["$ echo captured task"] == "ctrl:press Enter"
    suite = load_suite(suite_file)  # the harvested session as a task: its check is the captured output
    (task,) = suite.tasks
    assert task.instruction == "Say that the task was captured." and task.check.output == ("captured task",)

    genome = seed_genome(data, [task.instruction])
    result = evaluate(genome, depth=2, out_dir=short_tmp / "eval", timeout=120, tasks=list(suite.tasks))
    assert result.status == "ok", result.error
    assert result.metrics["task_correct"] == 1 and result.tasks[0].passed


@pytest.mark.tmux
@pytest.mark.slow
def test_sigint_stops_a_capture_with_a_complete_repository(short_tmp: Path) -> None:
    sock, out = short_tmp / "t.sock", short_tmp / "captured"
    start_session(sock)
    try:
        proc = start_capture(sock, out)
        tmux(sock, "send-keys", "-t", "work", "-l", "ls")
        wait_for("the keys", lambda: "$ ls" in tmux(sock, "capture-pane", "-p", "-t", "work"))
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "interrupted" in (proc.stderr.read() if proc.stderr else "")
        assert tmux(sock, "has-session", "-t", "work") == ""  # the session lives on
    finally:
        subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True, check=False)
    assert json.loads((out / ".tower" / "result.json").read_text())["reason"] == "interrupted"
    assert (out / ".captures" / "work" / "000001.txt").read_text().startswith("$ ls")


def test_a_missing_session_is_one_clear_line(short_tmp: Path) -> None:
    with pytest.raises(CaptureError, match="no tmux session 'ghost'"):
        SessionCapture("ghost", short_tmp / "o", socket=str(short_tmp / "none.sock")).run()
    proc = subprocess.run([sys.executable, "-m", "evolve.cli", "capture", "--session", "ghost", "--out",
                           str(short_tmp / "o"), "--socket", str(short_tmp / "none.sock")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("evolve: error: no tmux session")
    assert "Traceback" not in proc.stderr


def test_harvest_refuses_what_is_not_a_trajectory(short_tmp: Path) -> None:
    with pytest.raises(HarvestError, match="not a trajectory repository"):
        harvest([short_tmp])
    with pytest.raises(HarvestError, match="max-entries"):
        harvest([short_tmp], max_entries=0)


@pytest.mark.tmux
@pytest.mark.slow
def test_harvest_of_tower_trajectories_dedups_and_caps(short_tmp: Path) -> None:
    runs = []
    for i in range(2):
        r = evaluate(typing_genome("echo again"), depth=1, out_dir=short_tmp / f"r{i}", timeout=60,
                     tasks=one_task("again"))
        assert r.status == "ok", r.error
        runs.append(short_tmp / f"r{i}")
    data = harvest(runs, max_entries=1)
    assert all(len(rows) == 1 for rows in data["experience"].values())
    full = harvest(runs)
    weights = {(q, v): w for q, _, v, w in full["experience"]["decision"]}
    assert weights[("$ echo again", "ctrl:press Enter")] == 2.0  # one per trajectory, merged
    assert full["tasks"] == [{"command": "echo again", "expected": "again"}]
