"""Same genome + seed -> the same non-timing metrics and the same trajectory text, however
busy the machine is (SPEC §3): settling never ends on a time window that load stretches."""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness_tower.evaluate import EvalResult, evaluate
from harness_tower.genome import load_genome
from harness_tower.tasks import load_suite
from populations.tower import SEEDS_DIR
from tests.harness_tower.conftest import git, typing_genome

pytestmark = [pytest.mark.tmux, pytest.mark.slow]
TIMING = ("avg_interval", "expert_")


def _spin(stop: multiprocessing.synchronize.Event) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


@contextmanager
def cpus_busy() -> Iterator[None]:
    """Every CPU of the machine kept busy by a spinning process (twice over)."""
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    procs = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(2 * (os.cpu_count() or 1))]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(10)


def _fingerprint(result: EvalResult) -> tuple[str, str | None, dict[str, object], list[str]]:
    """Status, reason, every non-timing metric, and the trajectory's text (subjects and captures)."""
    assert result.trajectory is not None
    metrics = {k: v for k, v in result.metrics.items() if not k.startswith(TIMING)}
    repo = result.trajectory
    text = git(repo, "log", "--reverse", "--format=%s", "-p", "--", ".", ":(exclude).tower").splitlines()
    return result.status, result.error, metrics, [line for line in text if not line.startswith("index ")]


GENOMES = {
    "kernel_line": lambda: load_genome(SEEDS_DIR / "kernel_line.json"),
    "literal_statement": lambda: load_genome(SEEDS_DIR / "literal_statement.json"),
    # a failing tower: whatever it is asked, it prints something else
    "failing": lambda: typing_genome("echo hello there", max_iterations=3, settle_timeout=2),
}


@pytest.mark.parametrize("name", sorted(GENOMES))
def test_metrics_and_text_do_not_depend_on_load(short_tmp: Path, name: str) -> None:
    genome = GENOMES[name]()
    suite = load_suite("shell")  # a sequence, a file written, a pipeline over set-up data: all the seeds know
    tasks = [suite.task(t) for t in ("print-one-to-five", "file-create-note", "text-count-errors")]
    quiet = evaluate(genome, depth=2, out_dir=short_tmp / "quiet", seed=11, timeout=90, tasks=tasks)
    with cpus_busy():
        busy = evaluate(genome, depth=2, out_dir=short_tmp / "busy", seed=11, timeout=180, tasks=tasks)
    assert quiet.status == "ok", quiet.error
    assert (quiet.metrics["task_pass_rate"] == 0) == (name == "failing")
    assert [(t.task_id, t.passed, t.typed) for t in busy.tasks] == [(t.task_id, t.passed, t.typed) for t in quiet.tasks]
    assert _fingerprint(busy) == _fingerprint(quiet)
