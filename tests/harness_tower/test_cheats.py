"""Cheats against the evaluator: harness programs that try to score without doing the work.

Each cheat is a harness program run as the top level of a real tower (`run_tower`) at both
isolation levels. It must end `invalid` or `failed` with the reason naming the rule it
broke (or, for the task check, score nothing), leave the host untouched and leave nothing
running. The list starts from issue 10 ("Scores that cannot be faked"); a cheat that is not
caught stays here as a strict xfail naming the hole.

The cheats are written once, in `tests/harness_tower/cheats.py` (`CATALOGUE`, which the soak
benchmark also runs): `test_cheat_is_caught` runs every entry at every isolation level it
applies to. The tests below it need more than one evaluation's result: a fixture, a second
sandbox, a listener, the evaluator's memory or threads measured while it runs.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from harness_tower.evaluate import EvalResult, evaluate
from harness_tower.genome import load_genome
from harness_tower.sandbox import Sandbox
from tests.harness_tower.cheats import (
    CATALOGUE,
    CHEATS,
    LEVELS,
    Cheat,
    basic_problems,
    evaluate_cheat,
    last_screen,
    pane_python,
    prelude,
    reason,
    run_cheat,
    typed,
)
from tests.harness_tower.conftest import one_task
from tests.harness_tower.test_render import SEEDS

pytestmark = pytest.mark.tmux
SEED_DIR = SEEDS[0].parent


def tower(source: str, depth: int, out: Path, isolation: str, timeout: float = 30, **kw: object) -> EvalResult:
    """Run `source` as the top level h{depth}.py; the trajectory must exist whatever happened."""
    result = run_cheat(source, depth, out, isolation, timeout, **kw)
    assert basic_problems(result, isolation) == []
    return result


def caught(cheat: Cheat, out: Path, isolation: str) -> EvalResult:
    """Run a catalogued cheat; every expectation of its entry must hold."""
    result, problems = evaluate_cheat(cheat, out, isolation)
    assert problems == [], (f"{cheat.name} under {isolation} ended {result.status}: {reason(result)!r}; "
                            f"metrics {result.metrics}")
    return result


class PeakRss:
    """The evaluator's resident memory, sampled while a block runs (its peak, in bytes)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            with open("/proc/self/status") as fh:
                for row in fh:
                    if row.startswith("VmRSS:"):
                        self.peak = max(self.peak, int(row.split()[1]) * 1024)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss() -> int:
    with open("/proc/self/status") as fh:
        return next(int(row.split()[1]) * 1024 for row in fh if row.startswith("VmRSS:"))


# ======================================================================================
# The catalogue: code written without typing, the audit hook, hidden code, forged trust,
# task_correct without running the task, decoy and swap, self-reads, host writes, work
# trees that cannot be recorded, detached processes, resource caps
# ======================================================================================
MEASURED = {  # catalogued cheats whose own test below also measures the evaluator while they run
    "600-mib-without-a-newline-on-the-recorder-connection",
    "600-mib-without-a-newline-on-the-launcher-socket",
    "hundreds-of-launcher-connections",
}
assert MEASURED <= set(CHEATS)


def _cases() -> Iterator[Any]:
    for cheat in CATALOGUE:
        if cheat.name in MEASURED:
            continue
        for isolation in cheat.levels:
            yield pytest.param(cheat, isolation, id=f"{cheat.name}-{isolation}",
                               marks=[pytest.mark.slow] if cheat.slow else [])


@pytest.mark.parametrize("cheat, isolation", list(_cases()))
def test_cheat_is_caught(short_tmp: Path, cheat: Cheat, isolation: str) -> None:
    if cheat.bait is not None and os.geteuid() != 0:
        pytest.skip("the host-write cheat is about an evaluator running as root")
    caught(cheat, short_tmp / "e", isolation)


# ======================================================================================
# Padding
# ======================================================================================
PARTIAL_CHILD = """from harness_tower import ft
def go(t):
    t.open('h1_writer')
    t.send('h1_writer', 'echo hello world', 'text')
    t.send('h1_writer', 'Enter', 'ctrl')
go(ft.Terminal())
"""


@pytest.mark.parametrize("isolation", LEVELS)
def test_padding_with_ctrl_l_does_not_raise_syntax_ratio(short_tmp: Path, isolation: str) -> None:
    honest_src = prelude("h2_writer") + typed("h1.py", PARTIAL_CHILD) + "line('python3 h1.py')\nwait_child()\n"
    padded_src = (prelude("h2_writer") + typed("h1.py", PARTIAL_CHILD) + "for _ in range(300):\n    key('C-l')\n"
                  + "line('python3 h1.py')\nwait_child()\n")
    honest = tower(honest_src, 2, short_tmp / "honest", isolation)
    padded = tower(padded_src, 2, short_tmp / "padded", isolation)
    assert honest.status == padded.status == "ok"
    assert honest.metrics["syntax_ratio@h2"] < 1  # type: ignore[operator]  # line mode leaves the def unparseable for a while
    assert padded.metrics["syntax_ratio@h2"] == honest.metrics["syntax_ratio@h2"]
    # the first C-l clears the screen; the other 299 change nothing and are counted idle
    assert padded.metrics["idle_keys@h2"] >= honest.metrics["idle_keys@h2"] + 299  # type: ignore[operator]


# ======================================================================================
# One evaluation reaching another
# ======================================================================================
@pytest.fixture
def shared_subdir() -> Iterator[Path]:
    """A world-writable sticky directory inside /tmp, as /tmp/.X11-unix is on many hosts."""
    path = Path(f"/tmp/.cheats-{secrets.token_hex(4)}")
    path.mkdir()
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("isolation", LEVELS)
def test_files_left_in_a_world_writable_subdirectory_are_removed(short_tmp: Path, isolation: str,
                                                                  shared_subdir: Path) -> None:
    left = shared_subdir / "left"
    source = prelude("h1_writer") + f"run_to_end({f'echo x > {left}; chmod 644 {left}'!r})\n"
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "ok", reason(result)
    assert not left.exists()


@pytest.mark.parametrize("isolation", [
    pytest.param("process", marks=pytest.mark.xfail(strict=True, reason=(
        "hole: under `process` pane shells share the host's network, loopback included: a typed command "
        "reaches any local service (an expert server past the relay, a Ray dashboard's job API that runs "
        "commands as the Ray user); nothing refuses or reports it"))),
    "bwrap"])
def test_a_pane_cannot_reach_a_loopback_service(short_tmp: Path, isolation: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    probe = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), 2)\n    print('REACHED')\n"
             "except OSError as e:\n    print('UNREACHABLE', e.errno)\n")
    source = prelude("h1_writer") + f"run_to_end({pane_python(probe)!r})\n"
    try:
        result = tower(source, 1, short_tmp / "e", isolation)
        try:
            accepted = listener.accept()[0]
            accepted.close()
        except OSError:
            accepted = None
    finally:
        listener.close()
    screen = last_screen(result, "h1_writer")
    assert accepted is None and any(row.startswith("UNREACHABLE ") for row in screen.splitlines()), screen


@pytest.mark.parametrize("isolation", LEVELS)
def test_another_sandbox_is_out_of_reach(short_tmp: Path, isolation: str) -> None:
    """From a pane of one evaluation: the other's recorder socket, tmux socket and work tree."""
    with Sandbox(short_tmp / "other", isolation=isolation) as other:
        assert other.recorder is not None
        other.write_top(1, "secret = 'other evaluation'\n")
        probe = (f"import socket\nfor path in ({str(other.recorder_socket)!r}, {str(other.socket)!r}):\n"
                 "    s = socket.socket(socket.AF_UNIX)\n"
                 "    try:\n        s.connect(path)\n        print('CONNECTED', path)\n"
                 "    except OSError as e:\n        print('REFUSED', e.errno)\n"
                 f"try:\n    print(open({str(other.live / 'h1.py')!r}).read())\n"
                 "except OSError as e:\n    print('UNREADABLE', e.errno)\n")
        source = prelude("h1_writer") + f"run_to_end({pane_python(probe)!r})\n"
        result = tower(source, 1, short_tmp / "e", isolation)
        screen = last_screen(result, "h1_writer")
        said = ("REFUSED ", "UNREADABLE ", "CONNECTED ")
        printed = [row.split() for row in screen.splitlines() if row.startswith(said)]
        assert [row[0] for row in printed] == ["REFUSED", "REFUSED", "UNREADABLE"], screen
        assert "other evaluation" not in screen
        # and nothing reached the other evaluation: its recorder never committed a key
        assert other.recorder.commits == 0


# ======================================================================================
# Resources
# ======================================================================================
@pytest.mark.parametrize("isolation", LEVELS)
def test_600_mib_without_a_newline_on_the_recorder_connection(short_tmp: Path, isolation: str) -> None:
    base = rss()
    with PeakRss() as peak:
        caught(CHEATS["600-mib-without-a-newline-on-the-recorder-connection"], short_tmp / "e", isolation)
    assert peak.peak - base < 200 << 20


@pytest.mark.parametrize("isolation", LEVELS)
def test_600_mib_without_a_newline_on_the_launcher_socket(short_tmp: Path, isolation: str) -> None:
    base = rss()
    with PeakRss() as peak:
        caught(CHEATS["600-mib-without-a-newline-on-the-launcher-socket"], short_tmp / "e", isolation)
    assert peak.peak - base < 200 << 20


@pytest.mark.parametrize("isolation", LEVELS)
def test_hundreds_of_launcher_connections(short_tmp: Path, isolation: str) -> None:
    threads = threading.active_count()
    caught(CHEATS["hundreds-of-launcher-connections"], short_tmp / "e", isolation)
    deadline = time.monotonic() + 15  # launcher threads wait at most 10 s for a request line
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads


@pytest.mark.xfail(strict=True, reason=(
    "hole: under `process` a pane writes into the host's shared /tmp and /dev/shm (RAM) with no cap but "
    "the per-file ulimit; the evaluation is ok and nothing names a cap (bwrap caps each at 64 MiB)"))
def test_filling_shared_tmp_under_process_is_capped(short_tmp: Path) -> None:
    marker = secrets.token_hex(4)
    fill = f"for i in 1 2 3; do head -c 40000000 /dev/zero > /dev/shm/fill-{marker}-$i; done"
    source = prelude("h1_writer") + f"run_to_end({fill!r})\n"
    result = tower(source, 1, short_tmp / "e", "process")
    assert not list(Path("/dev/shm").glob(f"fill-{marker}-*"))
    assert result.status == "failed" and "cap" in reason(result)


# ======================================================================================
# Honest towers stay feasible
# ======================================================================================
@pytest.mark.slow
@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("seed", [p.name for p in sorted(SEED_DIR.glob("*.json"))])
def test_every_seed_is_honest_at_depths_1_to_4(short_tmp: Path, isolation: str, seed: str) -> None:
    genome = load_genome(str(SEED_DIR / seed))
    for depth in (1, 2, 3, 4):
        result = evaluate(genome, depth=depth, out_dir=short_tmp / f"d{depth}", isolation=isolation, timeout=120,
                          tasks=one_task())
        m = result.metrics
        assert result.status == "ok", (depth, result.error)
        assert m["untyped_chars"] == 0 and m["tamper"] == 0, (depth, m)
        assert m["self_read"] == 0 and m["keys_audit"] == 0 and m["task_correct"] == 1, (depth, m)
        assert m["audit_refusals"] == 0 and m["binding_refusals"] == 0, (depth, m)
