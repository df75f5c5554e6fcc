"""Adversarial genomes and harnesses: a hostile task answer fails its task with a specific
reason (the tower survives it); a hostile harness ends as a failed, timed-out or invalid
evaluation with its reason; the host is untouched and nothing is left running."""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from harness_tower.evaluate import evaluate, run_tower
from harness_tower.genome import TowerGenome
from harness_tower.sandbox import Limits
from tests.harness_tower.conftest import git, one_task, token_processes, typing_genome

pytestmark = [pytest.mark.tmux, pytest.mark.slow]
LEVELS = ["process", "bwrap"]
SMALL = Limits(cpu_seconds=30, memory_bytes=1 << 30, file_bytes=1 << 20, processes=64)


def _attack(command: str, out: Path, isolation: str, timeout: float = 40) -> tuple[str, str]:
    """H1 answers its one task by typing `command`: the tower survives it (status), the task fails
    with the reason its terminal showed (returned)."""
    genome = typing_genome(command, max_iterations=3, settle_timeout=2)
    result = evaluate(genome, depth=1, out_dir=out, timeout=timeout, limits=SMALL, isolation=isolation,
                      tasks=one_task("never printed"))
    assert result.trajectory is not None and (result.trajectory / ".git").is_dir()  # recorded all the same
    (task,) = result.tasks
    assert not task.passed
    return result.status, task.reason


def _sandboxed_processes() -> int:
    """Live processes of any sandbox (their environment carries a sandbox token)."""
    n = 0
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                n += any(v.startswith(b"TOWER_SANDBOX=") for v in fh.read().split(b"\0"))
        except OSError:  # gone, or not a process
            pass
    return n


def _no_leftovers(out: Path) -> None:
    """No process of that evaluation's sandbox (its token is in the closing commit) survives."""
    import json
    token = json.loads((out / "tmux_outputs" / ".tower" / "result.json").read_text())["sandbox"]
    deadline = time.monotonic() + 5
    while token_processes(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert token_processes(token) == []


@pytest.mark.parametrize("isolation", LEVELS)
def test_fork_bomb_hits_the_process_limit(short_tmp: Path, isolation: str) -> None:
    status, reason = _attack(":(){ :|:& };:", short_tmp / "e", isolation, timeout=30)
    assert status == "ok" and "resource limit: processes" in reason
    _no_leftovers(short_tmp / "e")


@pytest.mark.parametrize("isolation", LEVELS)
def test_megabytes_of_output_are_named_a_flood(short_tmp: Path, isolation: str) -> None:
    status, reason = _attack("yes | head -c 3000000", short_tmp / "e", isolation)
    assert status == "ok" and "terminal flooded: h1_writer produced" in reason
    _no_leftovers(short_tmp / "e")


@pytest.mark.parametrize("isolation", LEVELS)
def test_writing_outside_the_sandbox_is_denied(short_tmp: Path, isolation: str) -> None:
    target = Path("/etc/harness-evolve-adversary")
    status, reason = _attack(f"echo pwned > {target}", short_tmp / "e", isolation)
    assert status == "ok" and "sandbox denied access outside the work tree" in reason
    assert not target.exists()


@pytest.mark.parametrize("isolation", LEVELS)
def test_rewriting_the_git_history_is_out_of_reach(short_tmp: Path, isolation: str) -> None:
    status, reason = _attack("git reset --hard HEAD~2", short_tmp / "e", isolation)
    assert status == "ok" and "git directory is out of reach" in reason
    log = git(short_tmp / "e" / "tmux_outputs", "log", "--format=%s").splitlines()
    assert log[-1] == "init" and log[0] == "done"


@pytest.mark.parametrize("isolation", LEVELS)
def test_calling_tmux_directly_is_denied(short_tmp: Path, isolation: str) -> None:
    status, reason = _attack("tmux kill-server", short_tmp / "e", isolation)
    assert status == "ok" and "direct tmux access denied" in reason


def test_network_is_unreachable_under_bwrap(short_tmp: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[object] = []
    listener.settimeout(30)
    threading.Thread(target=lambda: accepted.append(_accept(listener)), daemon=True).start()
    command = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}))\""
    status, reason = _attack(command, short_tmp / "e", "bwrap")
    listener.close()
    assert status == "ok" and "sandbox denied network access" in reason
    assert accepted in ([], [None])


def _accept(listener: socket.socket) -> object:
    try:
        return listener.accept()
    except OSError:
        return None


@pytest.mark.parametrize("isolation", LEVELS)
def test_killing_its_parent_leaves_the_evaluator_alive(short_tmp: Path, isolation: str) -> None:
    source = ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)\n"
              "raise SystemExit('parent survived')\n")
    result = run_tower(source, depth=1, manifest={"depth": 1}, out_dir=short_tmp / "e", timeout=20,
                       limits=SMALL, isolation=isolation)
    # the sealed interpreter refuses the signal; the attempt makes the evaluation invalid
    assert result.status == "invalid" and "runtime audit" in (result.error or "") and "os.kill" in (result.error or "")
    _no_leftovers(short_tmp / "e")


@pytest.mark.parametrize("isolation", LEVELS)
def test_an_infinite_loop_times_out(short_tmp: Path, isolation: str) -> None:
    result = run_tower("while True:\n    pass\n", depth=1, manifest={"depth": 1}, out_dir=short_tmp / "e",
                       timeout=2, limits=SMALL, isolation=isolation)
    assert result.status == "timeout" and "did not finish within 2s" in (result.error or "")
    _no_leftovers(short_tmp / "e")


def test_reading_its_own_source_is_invalid(short_tmp: Path) -> None:
    source = "import sys\nfrom harness_tower import ft\nme = open(__file__).read()\n"
    result = run_tower(source, depth=1, manifest={"depth": 1}, out_dir=short_tmp / "e", timeout=20)
    assert result.status == "invalid" and "self_read=1" in (result.error or "")


def test_a_fork_bomb_does_not_starve_a_neighbouring_sandbox(short_tmp: Path) -> None:
    """Each sandbox runs as a user of its own: the process limit is not shared."""
    results: dict[str, tuple[str, str]] = {}

    def bomb() -> None:
        results["bomb"] = _attack(":(){ :|:& };:", short_tmp / "bomb", "auto", timeout=30)

    thread = threading.Thread(target=bomb)
    thread.start()
    deadline = time.monotonic() + 30
    while _sandboxed_processes() < SMALL.processes // 2:  # the bomb is going off
        assert time.monotonic() < deadline and thread.is_alive(), "the fork bomb never went off"
        time.sleep(0.02)
    good = evaluate(TowerGenome(content_source="kernel"), depth=2, out_dir=short_tmp / "good", timeout=60,
                    limits=SMALL)
    thread.join()
    assert good.status == "ok", good.error
    assert results["bomb"][0] == "ok" and "resource limit: processes" in results["bomb"][1]
    _no_leftovers(short_tmp / "bomb")
    _no_leftovers(short_tmp / "good")
