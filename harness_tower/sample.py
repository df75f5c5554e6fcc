"""A task sample worked through by one tower: the evaluator's side of the task level's
`task` and `task_done` requests (`gateway.TaskHost`).

The task level asks for a task; the evaluator sets the next one of its sample up in a
fresh directory and opens the task terminal there, showing the instruction (`checks.prepare`),
and keeps a journal of what the level types and sees. When the level says it is done - or
asks for the next task, or exits - the task is checked at once (`checks.check`: an output
check on the journal's screens, a verifier in the task's directory) and the verdict is kept
here, never told to the level (a check that answered would become an oracle to search
against). A task whose set-up fails is a failed task with its reason, not a failed tower.

>>> # sample = TaskSample(box, suite.sample("train", 4, "7:0"))   # doctest: +SKIP
>>> # ... gateway serves it; after the tower:  sample.finish(); sample.results()
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness_tower.checks import SESSION, Prepared, SetupFailed, check, prepare
from harness_tower.diagnose import diagnose
from harness_tower.errors import TowerError
from harness_tower.sandbox import Sandbox
from harness_tower.tasks import Task
from validators.task_correct import Screen


@dataclass(frozen=True)
class TaskResult:
    """One task of the sample: whether its check passed, why, what was typed, how long it took."""

    task_id: str
    split: str
    tier: int
    passed: bool
    reason: str
    typed: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TaskSample:
    """The tasks of one evaluation, served in order to the task level."""

    def __init__(self, box: Sandbox, tasks: Sequence[Task]) -> None:
        self.box, self.tasks = box, tuple(tasks)
        self.done: list[TaskResult] = []
        self._current: Prepared | None = None
        self._started = 0.0
        self._next = 0

    # --- gateway.TaskHost -------------------------------------------------------------------
    def next_task(self) -> dict[str, Any]:
        self._close_current()
        while self._next < len(self.tasks):
            index, task = self._next, self.tasks[self._next]
            self._next += 1
            self._started = time.monotonic()
            try:
                self._current = prepare(self.box, task, f"{index:02d}-{task.id}")
            except SetupFailed as exc:
                self._record(task, False, f"set-up failed: {exc}", [])
                continue
            assert self.box.recorder is not None
            self.box.recorder.keep_journal(SESSION)
            return {"instruction": task.instruction, "index": index, "count": len(self.tasks)}
        return {"done": True, "count": len(self.tasks)}

    def task_done(self) -> dict[str, Any]:
        if self._current is None:
            return {"recorded": False}
        self._close_current()
        return {"recorded": True}

    # --- the evaluator ------------------------------------------------------------------------
    def finish(self) -> None:
        """After the tower: check the task in hand; tasks never reached fail as not attempted."""
        self._close_current()
        for task in self.tasks[self._next:]:
            self._record(task, False, "not attempted", [])
        self._next = len(self.tasks)

    def results(self) -> list[TaskResult]:
        return list(self.done)

    def pass_rate(self) -> float:
        return sum(r.passed for r in self.done) / len(self.tasks) if self.tasks else 0.0

    def _close_current(self) -> None:
        prepared, self._current = self._current, None
        if prepared is None:
            return
        assert self.box.recorder is not None
        screens: list[Screen] = []
        for _, kind, keys, capture in self.box.recorder.journal(SESSION):
            screens.append(("text", capture, keys) if kind == "text" else (keys, capture))
        try:
            verdict = check(self.box, prepared, screens)
            passed, reason = verdict.passed, verdict.reason
        except Exception as exc:  # noqa: BLE001 - a check that breaks fails its task, not the tower
            passed, reason = False, f"check failed: {type(exc).__name__}: {exc}"
        if not passed:  # what the terminal showed says why, where it can (a flood, a limit, a denial)
            output = {SESSION: self.box.recorder.output_bytes(SESSION, settle=True)}
            shown = [screens[-1][1]] if screens else []
            try:  # and the screen now: what a command printed after its key was recorded (a fork bomb's)
                shown.append(self.box.recorder.capture(SESSION)[0])
            except TowerError:
                pass
            why = diagnose(shown, output)
            reason = f"{why}: {reason}" if why else reason
        self._record(prepared.task, passed, reason, screens)

    def _record(self, task: Task, passed: bool, reason: str, screens: Sequence[Screen]) -> None:
        typed = "".join(s[2] if s[0] == "text" and len(s) > 2 else "\n" if s[0] == "Enter" else ""
                        for s in screens)
        self.done.append(TaskResult(task.id, task.split, task.tier, passed, reason, typed,
                                    round(time.monotonic() - self._started, 6)))
