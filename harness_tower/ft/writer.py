"""A writer level's ops: type the child file (a known source, or lines asked of an expert),
start the child in the writer's own terminal, and wait for it; the level's exit code.

The keys come from the one typing machine (`harness_tower.ft.typist`); these ops only press
them on the terminal.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from harness_tower.errors import GraphError
from harness_tower.ft.graph import (
    OK,
    PLAN,
    STATUS,
    TEXT,
    Const,
    Context,
    Op,
    Sequential,
    Status,
)
from harness_tower.ft.ops import Capture, PromptReturned, SendCtrl, SendText
from harness_tower.ft.terminal import MAX_TEXT, PROMPT, Terminal, chunks
from harness_tower.ft.typist import MAX_BLANK, MODES, Key, generated, run, typing_plan


class TypingPlan(Op):
    """Source text -> the sends that type it into a file in the given mode (`typing_plan`)."""

    takes, gives = (TEXT,), PLAN

    def __init__(self, source: Op, filename: str, mode: str, chunk: int) -> None:
        super().__init__(source)
        if mode not in MODES:
            raise GraphError(f"unknown typing mode {mode!r}")
        self.filename, self.mode, self.chunk = filename, mode, chunk

    def _apply(self, ctx: Context, source: str) -> list[tuple[str, str]]:
        return typing_plan(source, self.filename, self.mode, self.chunk)


class SendPlan(Op):
    """Executes a typing plan: a list of (kind, keys) sends."""

    takes, gives = (PLAN,), STATUS

    def __init__(self, session: str, plan: Op, settle_timeout: float = 5.0) -> None:
        super().__init__(plan)
        self.session, self.settle = session, settle_timeout

    def _apply(self, ctx: Context, plan: list[tuple[str, str]]) -> Status:
        for kind, keys in plan:
            ctx.term.send(self.session, keys, kind, self.settle)
        return OK


class WriteGenerated(Op):
    """Types a child file whose lines come one at a time from `step`, run afresh for each line.

    `step` is typically expert(fixation(capture)): each line is decided by looking at the
    screen after the previous one was typed. The typing, its modes and its bounds are
    `typist.generated`'s; the status is failed if the file outgrew `max_lines`/`max_bytes`.
    """

    takes, gives = (TEXT,), STATUS

    def __init__(self, session: str, step: Op, filename: str, mode: str, chunk: int = MAX_TEXT,
                 settle_timeout: float = 5.0, max_lines: int = 400, max_bytes: int = 1 << 16,
                 max_blank: int = MAX_BLANK) -> None:
        super().__init__(step)
        if mode not in MODES:
            raise GraphError(f"unknown typing mode {mode!r}")
        if not 1 <= chunk <= MAX_TEXT:
            raise GraphError(f"chunk must be within 1..{MAX_TEXT}")
        self.session, self.filename, self.mode, self.chunk = session, filename, mode, chunk
        self.settle, self.max_lines, self.max_bytes, self.max_blank = settle_timeout, max_lines, max_bytes, max_blank

    def _eager_inputs(self) -> Sequence[Op]:
        return ()

    def _apply(self, ctx: Context) -> Status:
        (step,) = self.inputs

        def press(key: Key) -> None:
            pieces = chunks(key.keys, self.chunk) if key.kind == "text" else (key.keys,)
            for piece in pieces:
                ctx.term.send(self.session, piece, key.kind, self.settle)
            if key.settle:
                self._await_row(ctx, key.shows)

        def next_line() -> str:
            value: str = step.run(ctx.fresh())  # the step gives Text (checked when composed)
            return value

        machine = generated(self.filename, self.mode, self.max_lines, self.max_bytes, self.max_blank)
        return run(machine, press, next_line)

    def _await_row(self, ctx: Context, prompt: str) -> None:
        """Wait until the cursor row is the bare `prompt`: the next look sees a settled screen."""
        deadline = time.monotonic() + self.settle
        while True:
            reply = ctx.term.capture(self.session)
            rows, y = reply["capture"].split("\n"), reply["cursor"][1]
            left = deadline - time.monotonic()
            if (0 <= y < len(rows) and rows[y].rstrip() == prompt.rstrip()) or left <= 0:
                return
            ctx.term.wait_output(self.session, min(left, 0.5))


# --------------------------------------------------------------------------------------
# What a rendered level program calls after its graph has run.
# --------------------------------------------------------------------------------------
def wait_child(term: Terminal, session: str, child: str, timeout: float) -> Status:
    """Wait (on output events, never a fixed sleep) until the prompt returns after `child` ran.

    Failed, naming the child, when it failed or hung.
    """
    returned = PromptReturned(Capture(session))
    deadline = time.monotonic() + timeout
    while not returned.run(Context(term)):
        left = deadline - time.monotonic()
        if left <= 0:
            return Status.failed(f"{child} did not finish within {timeout:g}s")
        term.wait_output(session, min(left, 1.0))
    tail = term.capture(session)["capture"].split(f"python3 {child}")[-1].split("\n")
    child_session = child.replace(".py", "_writer")
    # what `finish` prints for a failed child, or an uncaught exception's traceback
    failed = [line for line in tail if line.startswith(("Traceback", f"{child_session}: error"))]
    if failed:
        last = [line.strip() for line in tail if line.strip() and line.rstrip() != PROMPT.rstrip()]
        return Status.failed(f"{child} failed: {last[-1] if last else failed[0]}")
    return OK


def write_then_run(term: Terminal, session: str, write: Op, child: str, chunk: int, settle: float,
                   child_timeout: float) -> int:
    """A writer level's run: type the child (`write`), start it in the writer's own terminal,
    wait for its prompt to return; the exit code for the level program."""
    start = Sequential(write, SendText(session, Const("python3 " + child), chunk, settle),
                       SendCtrl(session, Const("Enter"), settle))
    status: Status = start.run(Context(term))  # a Sequential gives Status
    if status.ok:
        status = wait_child(term, session, child, child_timeout)
    return finish(session, status)


def finish(session: str, status: Status) -> int:
    """Exit code for a level program; a failed status is printed as one line on stderr."""
    if status.ok:
        return 0
    print(f"{session}: {status}", file=sys.stderr)
    return 1
