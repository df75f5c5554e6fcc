"""The cadence: costly work is made durable at once, cheap work in bulk, on a clock the test turns."""
from __future__ import annotations

from evolve.cadence import Cadence


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_costly_evaluations_are_staged_at_once_cheap_ones_every_second() -> None:
    clock = Clock()
    cadence = Cadence(worth=0.25, stage_every=1.0, clock=clock)
    cadence.generation_started()
    assert cadence.stage_now(0.3) and not cadence.stage_now(0.001)
    clock.now += 0.99
    assert not cadence.stage_now(0.001)
    clock.now += 0.01
    assert cadence.stage_now(0.001)
    cadence.staged()
    assert not cadence.stage_now(0.001)
    clock.now += 5
    cadence.generation_started()  # a new generation counts afresh
    assert not cadence.stage_now(0.001)


def test_checkpoints_come_every_few_seconds_and_after_the_last_generation() -> None:
    clock = Clock()
    cadence = Cadence(checkpoint_every=5.0, clock=clock)
    assert not cadence.checkpoint_now(last=False) and cadence.checkpoint_now(last=True)
    clock.now += 5.0
    assert cadence.checkpoint_now(last=False)
    cadence.checkpointed()
    assert not cadence.checkpoint_now(last=False)


def test_cheap_generations_are_committed_together_costly_ones_alone() -> None:
    clock = Clock()
    cadence = Cadence(commit_every=1.0, clock=clock)
    assert cadence.commit_now(1.0, last=False)  # a generation that took a second or more
    assert not cadence.commit_now(0.05, last=False) and cadence.commit_now(0.05, last=True)
    clock.now += 1.0
    assert cadence.commit_now(0.05, last=False)
    cadence.committed()
    assert not cadence.commit_now(0.05, last=False)


def test_the_status_file_is_written_at_most_twice_a_second_unless_a_generation_was_costly() -> None:
    clock = Clock()
    cadence = Cadence(worth=0.25, status_every=0.5, clock=clock)
    assert cadence.status_now()  # never written yet
    cadence.status_written()
    assert not cadence.status_now() and cadence.status_now(generation_seconds=0.25)
    clock.now += 0.5
    assert cadence.status_now()
