"""Ops and the static graph they compose into.

Every op declares the types it takes and the type it gives; composing a wrong graph raises
`GraphError` before anything runs. Running the graph pulls values from the output:
`Op.run(ctx)` runs the inputs an op needs, then its `_apply`. An op that acts gives a
`Status`. The control-flow ops live here too: `Switch` (route by prefix), `Sequential`
(early return on an error status) and `Recurrent` (repeat until a validator passes).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness_tower.errors import GraphError, TowerError
from harness_tower.ft.terminal import Terminal

# Value types flowing along graph edges ("Any": an input of any type).
SCREEN, TEXT, STATUS, BOOL, PLAN = "Screen", "Text", "Status", "Bool", "Plan"


class Status:
    """What an op that acts gives: done (`OK`), or failed with a one-line reason.

    Its text is what a level program prints on failure (`<session>: error: <reason>`), which
    the level above reads off its screen: `wait_child` looks for that line.

    >>> str(OK), str(Status.failed("h1.py did not finish within 60s"))
    ('ok', 'error: h1.py did not finish within 60s')
    >>> Status.failed("x") == Status.failed("x") != OK
    True
    """

    __slots__ = ("ok", "reason")
    ok: bool
    reason: str

    def __init__(self, ok: bool, reason: str = "") -> None:
        object.__setattr__(self, "ok", ok)
        object.__setattr__(self, "reason", reason)

    @classmethod
    def failed(cls, reason: str) -> Status:
        return cls(False, reason)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Status is a value: make a new one")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Status) and (self.ok, self.reason) == (other.ok, other.reason)

    def __hash__(self) -> int:
        return hash((self.ok, self.reason))

    def __str__(self) -> str:
        return "ok" if self.ok else f"error: {self.reason}"

    def __repr__(self) -> str:
        return "OK" if self.ok else f"Status.failed({self.reason!r})"


OK = Status(True)


class Context:
    """One pass over the graph: memoised op outputs plus the terminal."""

    def __init__(self, term: Terminal) -> None:
        self.term = term
        self.values: dict[int, Any] = {}
        self.capture_index: dict[str, int] = {}
        self.task: dict[str, Any] | None = None  # the task being worked on (a task level's pass)

    def fresh(self) -> Context:
        """A new pass (nothing memoised) that keeps counting captures where this one is, on
        the same task."""
        step = Context(self.term)
        step.capture_index, step.task = self.capture_index, self.task
        return step


class Op:
    takes: tuple[str, ...] = ()
    gives: str = STATUS

    def __init__(self, *inputs: Op) -> None:
        if len(inputs) != len(self.takes):
            raise GraphError(f"{type(self).__name__} takes {len(self.takes)} input(s), got {len(inputs)}")
        for i, (op, want) in enumerate(zip(inputs, self.takes)):
            if not isinstance(op, Op):
                raise GraphError(f"{type(self).__name__} input {i} must be an op, got {type(op).__name__}")
            if want != "Any" and op.gives != want:
                raise GraphError(f"{type(self).__name__} input {i} must give {want}, "
                                 f"but {type(op).__name__} gives {op.gives}")
        self.inputs = inputs

    def run(self, ctx: Context) -> Any:
        key = id(self)
        if key not in ctx.values:
            ctx.values[key] = self._apply(ctx, *[op.run(ctx) for op in self._eager_inputs()])
        return ctx.values[key]

    def _eager_inputs(self) -> Sequence[Op]:
        """The inputs run before `_apply` (an op that runs its inputs itself returns none)."""
        return self.inputs

    def _apply(self, ctx: Context, *args: Any) -> Any:
        raise NotImplementedError


class Const(Op):
    def __init__(self, value: str, gives: str = TEXT) -> None:
        super().__init__()
        self.value, self.gives = value, gives

    def _apply(self, ctx: Context) -> Any:
        return self.value


class Switch(Op):
    """Routes by the selector's prefix (`text:...` -> branch "text"); only that branch runs."""

    takes, gives = (TEXT,), STATUS

    def __init__(self, selector: Op, branches: dict[str, Op]) -> None:
        super().__init__(selector)
        for name, op in branches.items():
            if not isinstance(op, Op) or op.gives != STATUS:
                raise GraphError(f"switch branch {name!r} must be an op giving Status")
        self.branches = branches

    def _apply(self, ctx: Context, selector: str) -> Status:
        prefix = selector.split(":", 1)[0]
        if prefix not in self.branches:
            raise TowerError(f"impasse: switch has no branch for {prefix!r} (from {selector!r})")
        status: Status = self.branches[prefix].run(ctx)  # a branch gives Status (checked above)
        return status


class Sequential(Op):
    """Runs ops in order; the first failed status returns early."""

    gives = STATUS

    def __init__(self, *ops: Op) -> None:
        self.takes = tuple("Any" for _ in ops)
        super().__init__(*ops)

    def _eager_inputs(self) -> Sequence[Op]:
        return ()

    def _apply(self, ctx: Context) -> Status:
        result: Any = OK
        for op in self.inputs:
            result = op.run(ctx)
            if isinstance(result, Status) and not result.ok:
                return result
        return result if isinstance(result, Status) else OK


class Recurrent(Op):
    """Repeats `body` (a fresh pass each time) until `until` is true or max iterations.

    With `busy` (a Bool op) and `wait_session`: while the terminal is busy (e.g. no prompt at
    the cursor), an iteration waits for its output (at most `wait_timeout` s, on output
    events, never a fixed sleep) instead of acting on a half-drawn screen.
    """

    gives = STATUS

    def __init__(self, body: Op, until: Op, max_iterations: int, wait_session: str | None = None,
                 wait_timeout: float = 0.0, busy: Op | None = None) -> None:
        self.takes = ("Any", BOOL) if busy is None else ("Any", BOOL, BOOL)
        super().__init__(*((body, until) if busy is None else (body, until, busy)))
        if busy is not None and not wait_session:
            raise GraphError("recurrent with a busy predicate needs the session to wait on")
        self.max_iterations = max_iterations
        self.wait_session, self.wait_timeout = wait_session or "", wait_timeout

    def _eager_inputs(self) -> Sequence[Op]:
        return ()

    def _apply(self, ctx: Context) -> Status:
        body, until = self.inputs[:2]
        busy = self.inputs[2] if len(self.inputs) > 2 else None
        for _ in range(self.max_iterations):
            if until.run(Context(ctx.term)):
                return OK
            if busy is not None and busy.run(Context(ctx.term)):
                ctx.term.wait_output(self.wait_session, self.wait_timeout)
                continue
            body.run(ctx.fresh())
        return OK if until.run(Context(ctx.term)) else Status.failed("validator never passed")
