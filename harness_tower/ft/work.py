"""Working through tasks: the ops a task level uses to learn what was asked and to turn it
into a command, and the loop over the evaluation's task sample.

A task level asks the recorder for each task (`Terminal.task`); the instruction is also
shown above the first prompt of the task's fresh terminal. In the graph, `Instruction`
gives it; `SlotExpert` retrieves command templates (`wc -l < {file}`) whose slots the
instruction fills (`harness_tower.slots`), so one experience row serves many tasks;
`Chose` tells which way a decision went.
"""
from __future__ import annotations

from typing import Any

from harness_tower.errors import GraphError, TowerError
from harness_tower.ft.experience import Experience
from harness_tower.ft.graph import BOOL, OK, STATUS, TEXT, Context, Op, Status
from harness_tower.ft.terminal import Terminal
from harness_tower.slots import extract, fill


class Instruction(Op):
    """The current task's instruction (as the recorder gave it)."""

    gives = TEXT

    def _apply(self, ctx: Context) -> str:
        if ctx.task is None:
            raise GraphError("instruction used outside a task")
        return str(ctx.task.get("instruction", ""))


class Join(Op):
    """Two texts as one query (a decision and the instruction it serves)."""

    takes, gives = (TEXT, TEXT), TEXT

    def _apply(self, ctx: Context, first: str, second: str) -> str:
        return f"{first}\n{second}"


class SlotExpert(Op):
    """Query -> the best-voted template among the top-k rows that the instruction's slots fill,
    filled. Rows whose template names a slot the instruction lacks do not vote."""

    takes, gives = (TEXT, TEXT), TEXT

    def __init__(self, query: Op, instruction: Op, experience: Experience, topk: int = 1,
                 name: str = "command") -> None:
        super().__init__(query, instruction)
        if not isinstance(experience, Experience) or not experience.rows:
            raise GraphError(f"expert {name!r} needs a non-empty Experience")
        self.experience, self.topk, self.name = experience, topk, name

    def _apply(self, ctx: Context, query: str, instruction: str) -> str:
        slots = extract(instruction)
        votes: dict[str, float] = {}
        used = 0
        for score, i in self.experience.ranked(query, len(self.experience.rows)):
            filled = fill(self.experience.rows[i][2], slots)
            if filled is None:
                continue
            votes[filled] = votes.get(filled, 0.0) + score
            used += 1
            if used >= self.topk:
                break
        if not votes:
            raise TowerError(f"impasse: expert {self.name!r} has no experience that fits {instruction!r}")
        return max(votes, key=lambda v: votes[v])


class Chose(Op):
    """Whether a decision (`kind:hint`) is of the given kind."""

    takes, gives = (TEXT,), BOOL

    def __init__(self, decision: Op, kind: str) -> None:
        super().__init__(decision)
        self.kind = kind

    def _apply(self, ctx: Context, decision: str) -> bool:
        return decision.split(":", 1)[0] == self.kind


class Either(Op):
    """True when either predicate is (a validator made of two: the decision said done, or the
    prompt is back)."""

    takes, gives = (BOOL, BOOL), BOOL

    def _apply(self, ctx: Context, first: bool, second: bool) -> bool:
        return first or second


class Done(Op):
    """A branch that does nothing: the task is finished."""

    gives = STATUS

    def _apply(self, ctx: Context) -> Status:
        return OK


def work_through_tasks(term: Terminal, step: Op) -> Status:
    """Run `step` once per task of the evaluation's sample, each in a context that knows the
    task; an impasse ends that task (the next one starts), not the level. Returns OK once the
    sample is worked through."""
    while True:
        task: dict[str, Any] | None = term.task()
        if task is None:
            return OK
        ctx = Context(term)
        ctx.task = task
        try:
            step.run(ctx)
        except TowerError:
            pass  # this task is left as it is; the evaluator checks it
        term.task_done()
