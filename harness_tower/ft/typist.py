"""Typing a file into the shell: one state machine for every way a level types its child.

`typing_machine` is that machine, a generator of keys: it yields each `Key` to press and `NEXT`
when it wants the next line of the file; the driver answers `NEXT` by sending the line (or
`None`: the file is complete), and anything else by pressing the key. Every writer drives
it: `typing_plan` (a source known in advance, as a list of sends), the expert writer
(`generated`, lines asked one at a time of an expert looking at the screen) and the
renderer's offline screen model (which predicts what that expert will see), so they type
the same keys and cannot drift.

Two modes trade diff size against syntax validity (SPEC §5): `line` (`cat > file`, one
Enter per line: the file grows a line at a time, small diffs, often unparseable mid-way) and
`statement` (here-documents, each closed once the file would parse: the file stays
parseable, diffs are whole statements).
"""
from __future__ import annotations

import ast
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TypeVar

from harness_tower.errors import TowerError
from harness_tower.ft.graph import OK, Status
from harness_tower.ft.terminal import PROMPT, chunks

EOF_MARK = "__TOWER_EOF__"  # the here-document delimiter of statement mode
END_MARK = "__TOWER_END__"  # the value an expert gives when the child file is complete
MODES = ("line", "statement")
NEXT = None  # what the machine yields when it wants the next line
MAX_BLANK = 3  # blank lines in a row from an expert that end its file (a model with nothing to say)
HEREDOC_ROW = "> "  # the shell's continuation prompt, shown inside an open here-document

# Statement mode: close the here-document now? Asked with the file so far and the lines
# typed since the last close, after each line.
Flush = Callable[[str, Sequence[str]], bool]
R = TypeVar("R")


class Key:
    """One send: `text` (typed as is, in chunks) or `ctrl` (a named key).

    `shows` is what the terminal shows after the key: for an Enter, the start of the row the
    cursor moves to ("" under `cat`, "> " inside a here-document, the prompt once one closed).
    With `settle`, the writer waits until the cursor row shows it before it looks again.
    """

    __slots__ = ("keys", "kind", "settle", "shows")

    def __init__(self, kind: str, keys: str, shows: str = "", settle: bool = False) -> None:
        self.kind, self.keys, self.shows, self.settle = kind, keys, shows, settle

    def __repr__(self) -> str:
        return f"Key({self.kind!r}, {self.keys!r}, shows={self.shows!r}, settle={self.settle})"


# A machine yields keys (and NEXT), is sent lines (or None), and returns an R.
Machine = Generator[Key | None, str | None, R]


def should_flush(written: str, pending: Sequence[str]) -> bool:
    """Statement mode: close the here-document once the file plus the pending lines parse."""
    if not any(line.strip() for line in pending):
        return False
    try:
        ast.parse(written + "".join(line + "\n" for line in pending))
    except (SyntaxError, ValueError, RecursionError):
        return False
    return True


def typing_machine(filename: str, mode: str, flush: Flush = should_flush) -> Machine[None]:
    """The keys that type a file into `filename`, one line at a time as it is sent them."""
    if mode not in MODES:
        raise TowerError(f"unknown typing mode {mode!r}")
    enter_row = "" if mode == "line" else HEREDOC_ROW  # what the row after a typed line shows
    if mode == "line":
        yield Key("text", f"cat > {filename}")
        yield Key("ctrl", "Enter", "")
    written, opened = "", False
    pending: list[str] = []
    while (line := (yield NEXT)) is not None:
        if mode == "statement" and not pending:
            yield Key("text", f"cat {'>>' if opened else '>'} {filename} <<'{EOF_MARK}'")
            yield Key("ctrl", "Enter", HEREDOC_ROW, settle=True)
            opened = True
        if line:
            yield Key("text", line)
        yield Key("ctrl", "Enter", enter_row)
        if mode == "statement":
            pending.append(line)
            if flush(written, pending):
                yield Key("text", EOF_MARK)
                yield Key("ctrl", "Enter", PROMPT, settle=True)
                written += "".join(p + "\n" for p in pending)
                pending = []
    if mode == "line":
        yield Key("ctrl", "C-d", PROMPT)
    elif pending or not opened:  # the last here-document, or an empty file
        if not opened:
            yield Key("text", f"cat > {filename} <<'{EOF_MARK}'")
            yield Key("ctrl", "Enter", HEREDOC_ROW)
        yield Key("text", EOF_MARK)
        yield Key("ctrl", "Enter", PROMPT)


def run(machine: Machine[R], press: Callable[[Key], object], next_line: Callable[[], str | None]) -> R:
    """Drive a machine to its end: press its keys, answer its `NEXT`s; its return value."""
    reply: str | None = None
    while True:
        try:
            key = machine.send(reply)
        except StopIteration as stop:  # only the machine's own end (a callback's would be an error)
            result: R = stop.value  # what the machine returned
            return result
        if key is None:  # NEXT
            reply = next_line()
        else:
            reply = None
            press(key)


def _keys(machine: Machine[None], line: str | None) -> Iterator[Key]:
    """The keys `machine` yields on being sent `line`, up to its next `NEXT` or its end."""
    try:
        key = machine.send(line)
        while key is not None:  # NEXT
            yield key
            key = next(machine)
    except StopIteration:
        return


def generated(filename: str, mode: str, max_lines: int | None = None, max_bytes: int | None = None,
              max_blank: int = MAX_BLANK) -> Machine[Status]:
    """The typing machine fed by a source asked one line at a time (`NEXT` is answered with its value).

    The source ends the file with `END_MARK`, or with `max_blank` blank lines in a row (a
    model with nothing to say); past `max_lines`/`max_bytes` the file is closed and the
    machine returns a failed status (a rambling model cannot type forever). A value is typed
    as its first line without control characters; in statement mode a line that is the
    here-document delimiter is dropped (it would close the document early).
    """
    machine = typing_machine(filename, mode)
    yield from _keys(machine, None)  # started: up to the first NEXT
    lines, size, blanks = 0, 0, 0
    status = OK
    while True:
        if (max_lines is not None and lines >= max_lines) or (max_bytes is not None and size >= max_bytes):
            status = Status.failed(f"expert source exceeded max_lines={max_lines} or max_bytes={max_bytes}")
            break
        value = yield NEXT
        if value is None or value.strip() == END_MARK:
            break
        line = clean_line(value)
        blanks = blanks + 1 if not line else 0
        if blanks >= max_blank:
            break
        if mode == "statement" and line == EOF_MARK:
            continue
        yield from _keys(machine, line)
        lines, size = lines + 1, size + len(line.encode("utf-8")) + 1
    yield from _keys(machine, None)  # told the file is complete: it closes it
    return status


def clean_line(value: str) -> str:
    """The first line of an expert's answer, without control characters (tabs become spaces)."""
    line = value.split("\n", 1)[0].replace("\t", "    ")
    return "".join(c for c in line if c >= " " and c != "\x7f")


def statement_blocks(source: str) -> list[str]:
    """Split source into blocks of whole top-level statements (lines, newline-terminated)."""
    lines = source.splitlines(keepends=True)
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return lines
    ends = [node.end_lineno or node.lineno for node in body]
    blocks, start = [], 0
    for end in ends:
        blocks.append("".join(lines[start:end]))
        start = end
    if start < len(lines):
        tail = "".join(lines[start:])
        if blocks:
            blocks[-1] += tail
        else:
            blocks.append(tail)
    return [b for b in blocks if b]


class _BlockEnds:
    """Statement mode for a source known in advance: close after each whole statement block."""

    def __init__(self, blocks: Sequence[Sequence[str]]) -> None:
        self.ends: set[int] = set()
        total = 0
        for block in blocks:
            total += len(block)
            self.ends.add(total)
        self.typed = 0

    def __call__(self, written: str, pending: Sequence[str]) -> bool:
        self.typed += 1  # asked once per typed line
        return self.typed in self.ends


def typing_plan(source: str, filename: str, mode: str, chunk: int) -> list[tuple[str, str]]:
    """The sends that type `source` into `filename`: in `statement` mode one here-document per
    top-level statement (`statement_blocks`), in `line` mode one Enter per line."""
    body = source if source.endswith("\n") else source + "\n"
    if mode == "statement":
        if EOF_MARK in body:
            raise TowerError(f"source contains the here-document delimiter {EOF_MARK}")
        blocks = [block.splitlines() for block in statement_blocks(body)]
        machine = typing_machine(filename, mode, _BlockEnds(blocks))
        lines = iter([line for block in blocks for line in block])
    else:
        machine = typing_machine(filename, mode)
        lines = iter(body.splitlines())
    plan: list[tuple[str, str]] = []

    def press(key: Key) -> None:
        if key.kind == "text":
            plan.extend(("text", piece) for piece in chunks(key.keys, chunk))
        else:
            plan.append(("ctrl", key.keys))

    run(machine, press, lambda: next(lines, None))
    return plan


def heredoc(text: str) -> str:
    """A triple-quoted Python literal whose value is exactly `text` (escapes what must be).

    >>> ast.literal_eval(heredoc("a'''b\\\\c'"))
    "a'''b\\\\c'"
    """
    # No two unescaped quotes in a row and none at the end: the literal cannot close early.
    body = re.sub(r"'(?='|$)", "\\\\'", text.replace("\\", "\\\\"))
    return "'''" + body + "'''"
