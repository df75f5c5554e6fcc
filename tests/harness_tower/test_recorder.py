"""The recorder through a real sandbox: exact sends, one commit per send, refusals, teardown."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness_tower import ft
from harness_tower.sandbox import Sandbox
from tests.harness_tower.conftest import git, token_processes, user_processes

pytestmark = pytest.mark.tmux


def _trailers(message: str) -> dict[str, str]:
    out = {}
    for line in message.strip().splitlines()[1:]:
        if ": " in line:
            k, v = line.split(": ", 1)
            out[k] = v
    return out


def test_text_sends_are_exact_and_each_send_is_one_commit(out_dir: Path) -> None:
    payload = "é€ 'q\"$HOME\\;`x"  # quoting, expansion and non-ASCII must all arrive unchanged
    with Sandbox(out_dir) as box:
        assert box.recorder is not None
        box.recorder.init_commit({"depth": 1})
        term = ft.Terminal(box.connect("h1_writer"))
        term.open("h1_writer")
        sends = [("cat > out.txt", "text"), ("Enter", "ctrl"), (payload, "text"), ("Enter", "ctrl"), ("C-d", "ctrl")]
        seqs = [term.send("h1_writer", keys, kind)["seq"] for keys, kind in sends]
        assert seqs == [1, 2, 3, 4, 5]
        box.finish({"status": "ok"})
    work = box.work
    assert (work / "out.txt").read_text(encoding="utf-8") == payload + "\n"
    subjects = git(work, "log", "--reverse", "--format=%s").splitlines()
    assert subjects[0] == "init" and subjects[-1] == "done"
    key_commits = git(work, "log", "--reverse", "--format=%H").split()[1:-1]
    assert len(key_commits) == len(sends)
    times = []
    for sha, (keys, kind) in zip(key_commits, sends):
        t = _trailers(git(work, "log", "-1", "--format=%B", sha))
        assert json.loads(t["Keys"]) == keys and t["Kind"] == kind
        times.append(float(t["Time"]))
        assert len(t["Time"].split(".")[1]) == 6
    assert times == sorted(times)
    # the capture of the payload's commit shows its echo
    capture = git(work, "show", f"{key_commits[2]}:.captures/h1_writer/000003.txt")
    assert payload in capture


def test_refused_sends_make_no_commit(out_dir: Path) -> None:
    with Sandbox(out_dir) as box:
        assert box.recorder is not None
        box.recorder.init_commit({"depth": 1})
        term = ft.Terminal(box.connect("h1_writer"))
        term.open("h1_writer")
        for keys, kind, why in [("x" * 17, "text", "17 characters refused"), ("", "text", "non-empty"),
                                ("C-z", "ctrl", "refused"), ("a", "paste", "unknown send kind")]:
            with pytest.raises(ft.TowerError, match=why):
                term.send("h1_writer", keys, kind)
        with pytest.raises(ft.TowerError, match="types only into h1_writer"):
            term.send("h9_writer", "ls", "text")  # a connection is bound to one session
        box.finish({"status": "ok"})
    assert git(box.work, "log", "--format=%s").split() == ["done", "init"]


def test_unfinished_trajectory_has_no_history(out_dir: Path) -> None:
    """A sandbox torn down without finish() leaves a work tree that is no repository at all."""
    with Sandbox(out_dir) as box:
        assert box.recorder is not None
        box.recorder.init_commit({"depth": 1})
        term = ft.Terminal(box.connect("h1_writer"))
        term.open("h1_writer")
        term.send("h1_writer", "echo hi", "text")
    assert not box.work.exists() and not box.git_dir.exists()


def _harness(body: str) -> str:
    return "import sys, time\nfrom harness_tower import ft\n" + body


@pytest.mark.parametrize("body, timeout, expect", [
    # a harness that raises
    ("t = ft.Terminal(); t.open('h1_writer')\nt.send('h1_writer', 'sleep 600 &', 'text')\n"
     "t.send('h1_writer', 'Enter', 'ctrl')\nraise RuntimeError('boom')\n", 30, "boom"),
    # a harness that hangs, with a detached background job in its pane
    ("t = ft.Terminal(); t.open('h1_writer')\nt.send('h1_writer', 'setsid sleep 99&', 'text')\n"
     "t.send('h1_writer', 'Enter', 'ctrl')\ntime.sleep(600)\n", 3, None),
    # a harness that floods its terminal
    ("t = ft.Terminal(); t.open('h1_writer')\nt.send('h1_writer', 'yes flood', 'text')\n"
     "t.send('h1_writer', 'Enter', 'ctrl')\ntime.sleep(600)\n", 3, None),
])
def test_teardown_leaves_nothing_behind(out_dir: Path, body: str, timeout: float, expect: str | None) -> None:
    with Sandbox(out_dir) as box:
        assert box.recorder is not None
        box.write_top(1, _harness(body))
        box.recorder.init_commit({"depth": 1})
        outcome = box.run_top(1, _harness(body), timeout=timeout)
        if expect:
            assert outcome.returncode == 1 and expect in outcome.stderr_tail
        else:
            assert outcome.timed_out
        box.finish({"status": "done"})
        token, socket, uid = box.token, box.socket, box.uid
    deadline = time.monotonic() + 5
    while (token_processes(token) or user_processes(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert token_processes(token) == [] and user_processes(uid) == []
    assert not socket.exists() and not socket.parent.exists()
    assert "done" in git(box.work, "log", "-1", "--format=%s")


def test_a_pipelines_output_is_in_the_capture_of_its_enter(out_dir: Path) -> None:
    """Settling waits until every stage of the foreground job runs its program and sleeps (the
    forks of a pipeline wait, asleep, before they exec: the leader alone says too little)."""
    with Sandbox(out_dir) as box:
        assert box.recorder is not None
        box.recorder.init_commit({"depth": 1})
        term = ft.Terminal(box.connect("h1_writer"))
        term.open("h1_writer")
        term.send("h1_writer", "seq 50 >n", "text")
        term.send("h1_writer", "Enter", "ctrl")
        box.recorder.keep_journal("h1_writer")
        for _ in range(20):
            for keys in ("sort n|uniq|tac|", "head -3|tail -1"):
                term.send("h1_writer", keys, "text")
            term.send("h1_writer", "Enter", "ctrl")
        enters = [capture for _, kind, _, capture in box.recorder.journal("h1_writer") if kind == "ctrl"]
        box.finish({"status": "ok"})
    assert len(enters) == 20
    assert all(capture.rstrip().splitlines()[-2:] == ["7", "$"] for capture in enters)
