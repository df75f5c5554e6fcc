"""Results on a species' tasks: per-task rows and a genome's result on a held-out split.

A search evaluates each individual on a sample of the `train` split; its front members are
evaluated on the whole `validation` split as they enter the front (`evolve.loop`), and on the
`test` split only on request (`evolve test`). A held-out split is evaluated in parts (one
evaluation each, `populations.base.HeldOut`); `summarise` adds them up, believing nothing a
part's evaluation did not report for its own tasks.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from evolve.store import HeldOutRow, TaskResultRow
from populations.base import HeldOut, Outcome

TRAIN = "train"  # what a search selects on: its per-generation samples
VALIDATION = "validation"  # every new front member, as it enters the front
TEST = "test"  # on request only, never selected on


def task_row(individual: str, g: int, t: Mapping[str, Any]) -> TaskResultRow:
    """A task result as the species reported it (`harness_tower.sample.TaskResult`)."""
    return TaskResultRow(individual, str(t["split"]), str(t["task_id"]), g, t.get("tier"), bool(t["passed"]),
                         str(t.get("reason", "")), str(t.get("typed", "")), float(t.get("seconds", 0.0)))


def task_dict(row: TaskResultRow) -> dict[str, Any]:
    """A stored task result as the species reported it (the inverse of `task_row`)."""
    return {"task_id": row.task_id, "split": row.split, "tier": row.tier, "passed": row.passed,
            "reason": row.reason, "typed": row.typed, "seconds": row.seconds}


def summarise(individual: str, split: str, g: int, got: Sequence[tuple[HeldOut, Outcome]],
              wall: float) -> tuple[HeldOutRow, list[TaskResultRow]]:
    """One genome's result on a held-out split from the evaluations of its parts: every task
    of every part counts, a task its evaluation did not report as failed (an evaluation that
    timed out or crashed cannot shrink the split)."""
    tasks: list[TaskResultRow] = []
    statuses = []
    errors = []
    for part, outcome in got:
        statuses.append(outcome.status)
        if outcome.error:
            errors.append(outcome.error)
        reported = {str(t.get("task_id")): t for t in outcome.tasks or ()}
        for task_id in part.tasks:  # only the part's own tasks, once each: nothing else is believed
            t = reported.get(task_id)
            if t is not None and t.get("split") == split:
                tasks.append(task_row(individual, g, t))
            else:
                why = f"not evaluated: the evaluation ended {outcome.status}"
                if outcome.error:
                    why += f" ({outcome.error})"
                tasks.append(TaskResultRow(individual, split, task_id, g, None, False, why[:500], "", 0.0))
    status = next((s for s in ("invalid", "timeout", "failed") if s in statuses), "ok")
    passed = sum(t.passed for t in tasks)
    total = len(tasks)
    return (HeldOutRow(individual, split, g, status, passed, total, passed / total if total else 0.0,
                       "; ".join(errors)[:500] or None, wall, None), tasks)
