"""`untyped_chars` (constraint, must be 0): characters of code that nobody typed.

SPEC §3: files change only through keys typed into panes. A harness that writes its child
with `open().write()` (or lets any other process do it) produces code whose characters
never went through a terminal. This metric finds them from the history alone.

For each `*.py` file f (outside `.captures/`/`.tower/`, regular files only) and each commit
c at which f's content changes - any session, the root `init` included - let

- I = the characters inserted: f's new content less an LCS alignment with its old content
  (rapidfuzz `Indel.opcodes` on the part between the common prefix and suffix);
- T = the text keys sent in *all* sessions from f's previous change up to and including c
  (`Kind: text` keys verbatim, `Enter` as "\\n", `Tab` as "\\t", other control keys
  nothing; from the start of the history when f never changed before).

The file contributes `len(I) - LCS(I, T)`; the metric is the sum over every (c, f). A
deletion inserts nothing and contributes 0. The top-level `h{N}.py` that the evaluator
places in `init` (N = the manifest's depth) is exempt there - and only there: a later change
to it counts like any other.

The key of f's previous change is part of the window because the recorder snapshots the
work tree after each key: a line that `cat` writes a moment after its Enter lands with the
next key, which is itself the start of the next line. Text typed before that does not count
toward a later change.

Honest typing scores 0: in line mode (`cat > h1.py`) each Enter adds the line just typed;
a here-document (`cat > h1.py <<'EOF'`, lines, `EOF`) adds text that is a subsequence of
what was typed. A harness that writes h1.py itself and then types `python3 h1.py` scores
nearly the whole file; writing 16 characters at a time between unrelated `C-l` keys scores
every one of them.

>>> inserted("print(1)\\n", "print(12)\\nx = 3\\n")
'2\\nx = 3'
>>> untyped("x = 3\\n", "cat >> h1.py\\nx = 3\\n"), untyped("x = 3\\n", "python3 h1.py\\n")
(0, 4)
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Indel, LCSseq, Postfix, Prefix

from validators.cli import metric_main
from validators.trajectory import Commit, Trajectory, is_python

CTRL_TEXT = {"Enter": "\n", "Tab": "\t"}


@dataclass(frozen=True)
class Untyped:
    """One (commit, file) whose inserted characters were not all typed."""

    sha: str
    subject: str
    path: str
    inserted: int      # len(I)
    untyped: int       # len(I) - LCS(I, T)


def key_text(commit: Commit) -> str:
    """What a key commit's key put into a terminal's input: text verbatim, Enter/Tab as
    characters, anything else nothing."""
    if not commit.is_key:
        return ""
    keys = commit.trailers.keys()
    if keys is None:
        return ""
    if commit.trailers.kind == "text":
        return keys
    if commit.trailers.kind == "ctrl":
        return CTRL_TEXT.get(keys, "")
    return ""


def inserted(old: str, new: str) -> str:
    """The characters of `new` outside one LCS alignment with `old`, in order."""
    head = Prefix.similarity(old, new)
    old, new = old[head:], new[head:]
    tail = Postfix.similarity(old, new)
    if tail:
        old, new = old[:-tail], new[:-tail]
    if not old or not new:
        return new
    return "".join(new[op.dest_start:op.dest_end] for op in Indel.opcodes(old, new)
                   if op.tag in ("insert", "replace"))


def untyped(inserted_text: str, typed: str) -> int:
    """`len(I) - LCS(I, T)`: inserted characters that the typed text cannot account for."""
    if not inserted_text:
        return 0
    if not typed:
        return len(inserted_text)
    return len(inserted_text) - int(LCSseq.similarity(inserted_text, typed))


class _Typed:
    """Everything typed so far, joined lazily (amortised linear, not one join per change)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.joined = ""
        self.joined_parts = 0

    def append(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.length += len(text)

    def since(self, offset: int) -> str:
        if self.joined_parts < len(self.parts):
            self.joined += "".join(self.parts[self.joined_parts:])
            self.joined_parts = len(self.parts)
        return self.joined[offset:]


def contributions(traj: Trajectory) -> list[Untyped]:
    """Every (commit, file) content change with its inserted and untyped counts, oldest first."""
    traj.prefetch_code()
    exempt = f"h{traj.depth}.py"
    typed = _Typed()
    start: list[int] = []           # per commit index: offset of its key's text in `typed`
    previous: dict[str, int] = {}   # path -> index of its last content change
    out: list[Untyped] = []
    for commit in traj.commits:
        start.append(typed.length)
        typed.append(key_text(commit))
        for change in commit.changes:
            if change.old == change.new or not is_python(change.path):
                continue
            last = previous.get(change.path)
            previous[change.path] = commit.index
            if change.new is None:
                continue                               # a deletion inserts nothing
            if commit.index == 0 and commit.subject == "init" and change.path == exempt:
                continue
            old = traj.text(change.old) if change.old is not None else ""
            ins = inserted(old, traj.text(change.new))
            if not ins:
                out.append(Untyped(commit.sha, commit.subject, change.path, 0, 0))
                continue
            window = typed.since(start[last] if last is not None else 0)
            out.append(Untyped(commit.sha, commit.subject, change.path, len(ins),
                               untyped(ins, window)))
    return out


def findings(traj: Trajectory) -> list[Untyped]:
    """The changes that hold untyped characters, oldest first."""
    return [u for u in contributions(traj) if u.untyped]


def total(items: Sequence[Untyped]) -> int:
    return sum(u.untyped for u in items)


def compute(traj: Trajectory) -> int:
    """Characters of `*.py` content that were inserted without being typed."""
    return total(contributions(traj))


if __name__ == "__main__":
    sys.exit(metric_main("untyped_chars", compute, per_session=False))
