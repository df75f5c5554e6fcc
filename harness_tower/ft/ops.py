"""The ops that touch the terminal or the experience: capture, fixation, expert, the sends,
and the screen predicates a validator is built from.
"""
from __future__ import annotations

import re
from typing import Any

from harness_tower.errors import GraphError, TowerError
from harness_tower.ft.experience import Experience, load_backend
from harness_tower.ft.graph import BOOL, OK, SCREEN, STATUS, TEXT, Context, Op, Status
from harness_tower.ft.terminal import MAX_TEXT, PROMPT, Screen, chunks


class Capture(Op):
    gives = SCREEN

    def __init__(self, session: str) -> None:
        super().__init__()
        self.session = session

    def _apply(self, ctx: Context) -> Screen:
        reply = ctx.term.capture(self.session)
        index = ctx.capture_index.get(self.session, 0) + 1
        ctx.capture_index[self.session] = index
        x, y = reply["cursor"]
        return Screen(reply["capture"], (x, y), index)


def parse_fixation_point(value: str) -> tuple[int, tuple[bool, int], int] | None:
    """A fixation policy value `"DT ROW COL"` -> (capture offset <= 0, (cursor-relative?, row), col).

    ROW is `c`, `c+K`, `c-K` (relative to the cursor row) or an absolute row number.
    Anything else is no point (None): the fixation op then looks where it looks by default.

    >>> parse_fixation_point("-1 c-2 4")
    (-1, (True, -2), 4)
    >>> parse_fixation_point("text:press Enter") is None
    True
    """
    m = re.fullmatch(r"\s*(-?\d{1,3})\s+(c(?:[+-]\d{1,3})?|\d{1,3})\s+(\d{1,3})\s*", value)
    if not m or int(m.group(1)) > 0:
        return None
    spec = m.group(2)
    row = (True, int(spec[1:] or 0)) if spec.startswith("c") else (False, int(spec))
    return int(m.group(1)), row, int(m.group(3))


def screen_state(screen: Screen) -> str:
    """What a fixation policy is queried with: the cursor row and the row above it."""
    lines, row = screen.lines, screen.cursor[1]
    return "\n".join(line.rstrip() for line in lines[max(0, row - 1):row + 1]).strip("\n")


class Fixation(Op):
    """Context around a fixation point (capture index, row, col) instead of the whole screen.

    Without a policy the point is (this capture, the cursor row or `row`, column 0). With a
    policy (an Experience whose values are points, see `parse_fixation_point`) the point is
    retrieved from the screen state; the op remembers its last captures so that a point may
    look back in time. The context is the rows within `radius` of the point, from its column.
    """

    takes, gives = (SCREEN,), TEXT
    HISTORY = 16

    def __init__(self, screen: Op, radius: int = 0, row: int | None = None,
                 policy: Experience | None = None, topk: int = 1) -> None:
        super().__init__(screen)
        if policy is not None and not isinstance(policy, Experience):
            raise GraphError("fixation policy must be an Experience")
        self.radius, self.row, self.policy, self.topk = radius, row, policy, topk
        self.history: list[Screen] = []

    def point(self, screen: Screen) -> tuple[Screen, int, int]:
        """The fixation point for this screen: (the capture looked at, row, col)."""
        self.history = (self.history + [screen])[-self.HISTORY:]
        default = (screen, screen.cursor[1] if self.row is None else self.row, 0)
        if self.policy is None:
            return default
        value = self.policy.retrieve(screen_state(screen), self.topk)
        parsed = parse_fixation_point(value) if value is not None else None
        if parsed is None:
            return default
        dt, (relative, r), col = parsed
        seen = self.history[max(0, len(self.history) - 1 + dt)]
        row = seen.cursor[1] + r if relative else r
        return seen, max(0, min(row, len(seen.lines) - 1)), col

    def _apply(self, ctx: Context, screen: Screen) -> str:
        return self.look(screen)

    def look(self, screen: Screen) -> str:
        """The context this op extracts from a screen (and remembers the screen)."""
        seen, row, col = self.point(screen)
        lines = seen.lines
        lo, hi = max(0, row - self.radius), min(len(lines), row + self.radius + 1)
        return "\n".join(line[col:].rstrip() for line in lines[lo:hi]).strip("\n")


class Expert(Op):
    """Query -> retrieval over experience -> optional backend translation; chainable."""

    takes, gives = (TEXT,), TEXT

    def __init__(self, query: Op, experience: Experience, topk: int = 1, backend: str = "retrieval",
                 name: str = "expert", config: dict[str, Any] | None = None) -> None:
        super().__init__(query)
        if not isinstance(experience, Experience) or not experience.rows:
            raise GraphError(f"expert {name!r} needs a non-empty Experience")
        self.experience, self.topk, self.name = experience, topk, name
        self.translate = load_backend(backend, config)

    def _apply(self, ctx: Context, query: str) -> str:
        value = self.translate(self.experience, query, self.topk)
        if value is None:
            raise TowerError(f"impasse: expert {self.name!r} has no experience matching {query!r}")
        return value


class SendText(Op):
    """Types text in chunks of at most `chunk` characters; one recorded send per chunk."""

    takes, gives = (TEXT,), STATUS

    def __init__(self, session: str, text: Op, chunk: int = MAX_TEXT, settle_timeout: float = 5.0) -> None:
        super().__init__(text)
        if not 1 <= chunk <= MAX_TEXT:
            raise GraphError(f"chunk must be within 1..{MAX_TEXT}")
        self.session, self.chunk, self.settle = session, chunk, settle_timeout

    def _apply(self, ctx: Context, text: str) -> Status:
        for piece in chunks(text, self.chunk):
            ctx.term.send(self.session, piece, "text", self.settle)
        return OK


class SendCtrl(Op):
    """Presses one named key (`Enter`, `C-d`, ...)."""

    takes, gives = (TEXT,), STATUS

    def __init__(self, session: str, key: Op, settle_timeout: float = 5.0) -> None:
        super().__init__(key)
        self.session, self.settle = session, settle_timeout

    def _apply(self, ctx: Context, key: str) -> Status:
        ctx.term.send(self.session, key, "ctrl", self.settle)
        return OK


class ScreenBusy(Op):
    """True when the cursor's line does not start with the prompt: a command is still running."""

    takes, gives = (SCREEN,), BOOL

    def _apply(self, ctx: Context, screen: Screen) -> bool:
        lines = screen.lines
        row = screen.cursor[1]
        line = lines[row].rstrip() if 0 <= row < len(lines) else ""
        return not line.startswith(PROMPT.rstrip())


class ScreenHasLine(Op):
    """True when a screen line (trailing spaces stripped, prompt lines excluded) equals `text`."""

    takes, gives = (SCREEN,), BOOL

    def __init__(self, screen: Op, text: str) -> None:
        super().__init__(screen)
        self.text = text

    def _apply(self, ctx: Context, screen: Screen) -> bool:
        return any(line.rstrip() == self.text for line in screen.lines if not line.startswith(PROMPT))


class PromptReturned(Op):
    """True when the last non-empty screen line is the bare prompt: the foreground job ended."""

    takes, gives = (SCREEN,), BOOL

    def _apply(self, ctx: Context, screen: Screen) -> bool:
        rows = [line.rstrip() for line in screen.lines if line.strip()]
        return bool(rows) and rows[-1] == PROMPT.rstrip()
