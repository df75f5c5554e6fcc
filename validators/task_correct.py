"""`task_correct`: did H1's terminal print the task's expected output? 1 or 0 (maximise).

The rule: the last capture of `h1_writer` must show the manifest's `task.expected` *as
output* - rows equal to its lines (trailing spaces stripped), consecutive, that the terminal
printed in answer to a submitted command. Text that was typed does not count, whether it
still sits at the prompt, was echoed by the terminal, wrapped over several rows (typing
":" + 97 spaces + "hello world" in a 100-column pane puts "hello world" alone on the next
row) or was never submitted.

How a row's origin is known from the history alone: follow the session's captures in
order and align each with the previous one. A terminal only scrolls up or clears and
redraws, so the alignment is the upward scroll offset under which most non-blank rows
match; a row that matches keeps its birth, any other row is born at this capture's key.
On the final screen, rows born at an `Enter` key that do not start with the manifest's
`prompt` are printed output; rows born at a text key (typing, its echo, its wrap) or at
another control key (`C-l` redraw, `BSpace`, `Up` recalling history, ...) are input. A row
born at an `Enter` that repeats the very line this `Enter` submitted is input echoed back
(`set -v`, `stty -echo; cat`), not an answer. The first capture is compared with an empty
screen. A task without `task.expected`, a manifest without a task, or a session that never
typed score 0.

A command and its answer:

>>> screens = [("text", "$ echo hello world\\n"),
...            ("Enter", "$ echo hello world\\nhello world\\n$ \\n")]
>>> shows_output(screens, "hello world", "$ ")
True

The same words typed at the prompt and never submitted, or wrapped onto a row of their own:

>>> shows_output([("text", "$ hello world\\n")], "hello world", "$ ")
False
>>> wrapped = "$ :" + " " * 97 + "\\nhello world\\n"
>>> shows_output([("text", wrapped), ("Enter", wrapped + "$ \\n")], "hello world", "$ ")
False

A terminal that echoes the submitted line back at Enter (`stty -echo; cat`) shows input:

>>> shows_output([("text", "$ stty -echo; cat\\n", "stty -echo; cat"),
...               ("Enter", "$ stty -echo; cat\\n\\n"),
...               ("text", "$ stty -echo; cat\\n\\n", "hello world"),
...               ("Enter", "$ stty -echo; cat\\nhello world\\n\\n")], "hello world", "$ ")
False

Output scrolled up by later commands keeps its birth; rows that appear at any other key
(here a redraw) are input:

>>> later = [("text", "$ echo hello world\\n"),
...          ("Enter", "$ echo hello world\\nhello world\\n$ \\n"),
...          ("text", "$ echo hello world\\nhello world\\n$ ls\\n"),
...          ("Enter", "hello world\\n$ ls\\nh1.py\\n$ \\n")]
>>> shows_output(later, "hello world", "$ ")
True
>>> shows_output([("text", "$ x\\n"), ("C-l", "hello world\\n$ \\n")], "hello world", "$ ")
False
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

from validators.cli import metric_main
from validators.trajectory import Trajectory

SESSION = "h1_writer"
ENTER = "Enter"


def _rows(capture: str) -> list[str]:
    return [row.rstrip() for row in capture.split("\n")]


def scroll_offset(before: Sequence[str], after: Sequence[str]) -> int | None:
    """How many rows the screen `before` scrolled up to become `after`: the offset s >= 0
    under which most non-blank rows match (`after[i] == before[i + s]`), the smallest on a
    tie; None when no non-blank row matches (a cleared or redrawn screen).

    >>> scroll_offset(["a", "b", "c"], ["b", "c", "d"]), scroll_offset(["a"], ["x"])
    (1, None)
    """
    where: dict[str, list[int]] = {}
    for j, row in enumerate(before):
        if row:
            where.setdefault(row, []).append(j)
    votes: dict[int, int] = {}
    for i, row in enumerate(after):
        for j in where.get(row, ()):
            if j >= i:
                votes[j - i] = votes.get(j - i, 0) + 1
    if not votes:
        return None
    return min(votes, key=lambda s: (-votes[s], s))


Screen = tuple[str, str] | tuple[str, str, str]


def births(screens: Sequence[Screen]) -> list[tuple[str, int]]:
    """The final screen's rows, each with the index (into `screens`) of the capture at which
    it was born.

    `screens` is one session's captures in order, each `(key, capture)` or `(key, capture,
    typed)`: the key as sent (`Enter`, `C-l`, ...) or "text" for a text key, and for a text
    key the text it typed.
    """
    rows: list[str] = []
    born: list[int] = []
    for index, screen in enumerate(screens):
        new = _rows(screen[1])
        if new == rows:
            continue
        offset = scroll_offset(rows, new)
        kept: list[int] = []
        for i, row in enumerate(new):
            j = i + offset if offset is not None else -1
            kept.append(born[j] if 0 <= j < len(rows) and rows[j] == row else index)
        rows, born = new, kept
    return list(zip(rows, born))


def submitted(screens: Sequence[Screen]) -> dict[int, frozenset[str]]:
    """For each `Enter` (by index): the lines it may have submitted, as far as the keys tell.

    The line is rebuilt from the text keys since the previous `Enter` (`BSpace` drops a
    character, `C-u`/`C-c` clear it). After a key that edits it invisibly (`Up`, `Tab`,
    arrows...) it could be any earlier line recalled from history, so every line submitted
    before counts as a candidate.

    >>> submitted([("text", "", "hello wor"), ("BSpace", ""), ("text", "", "ld"), ("Enter", "")])
    {3: frozenset({'hello wold'})}
    """
    out: dict[int, frozenset[str]] = {}
    line: str | None = ""
    history: set[str] = set()
    for index, screen in enumerate(screens):
        key = screen[0]
        if key == "text":
            typed = screen[2] if len(screen) > 2 else None  # type: ignore[misc]
            line = None if line is None or typed is None else line + typed
        elif key == ENTER:
            candidates = {line.rstrip()} if line is not None else set(history)
            out[index] = frozenset(candidates)
            history |= candidates
            line = ""
        elif key == "BSpace":
            line = line[:-1] if line is not None else None
        elif key in ("C-u", "C-c"):
            line = ""
        elif key not in ("C-l", "C-d", "Escape"):
            line = None
    return out


def output_rows(screens: Sequence[Screen], prompt: str) -> list[str | None]:
    """The final screen's rows, None for every row that is not printed output: born at a key
    other than `Enter`, starting with the prompt, or repeating the very line that `Enter`
    submitted (the terminal echoing input back: `set -v`, `stty -echo; cat`)."""
    lines = submitted(screens)
    out: list[str | None] = []
    for row, index in births(screens):
        printed = (screens[index][0] == ENTER and not (prompt and row.startswith(prompt))
                   and row not in lines.get(index, frozenset()))
        out.append(row if printed else None)
    return out


def shows_output(screens: Sequence[Screen], expected: str, prompt: str) -> bool:
    """Whether the final screen shows `expected` (lines, consecutive) as printed output."""
    want = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    rows = output_rows(screens, prompt)
    k = len(want)
    return any(rows[i:i + k] == want for i in range(len(rows) - k + 1))


def screens_of(traj: Trajectory, session: str = SESSION) -> list[Screen]:
    """(key, capture text, typed text) for each key commit of `session`; [] when it never
    typed."""
    if session not in traj.sessions:
        return []
    out: list[Screen] = []
    for commit in traj.commits_of(session):
        t = commit.trailers
        if t.kind == "text":
            out.append(("text", traj.capture_text(commit), t.keys() or ""))
        else:
            out.append((t.keys() or "", traj.capture_text(commit)))
    return out


def compute(traj: Trajectory) -> int:
    """1 when H1's last capture shows the expected output as printed output, else 0."""
    manifest = traj.manifest or {}
    task = manifest.get("task")
    if not isinstance(task, dict) or not isinstance(task.get("expected"), str):
        return 0
    screens = screens_of(traj)
    if not screens:
        return 0
    prompt = manifest.get("prompt")
    return int(shows_output(screens, task["expected"], prompt if isinstance(prompt, str) else ""))


if __name__ == "__main__":
    sys.exit(metric_main("task_correct", compute, per_session=False))
