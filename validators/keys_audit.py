"""`keys_audit` (constraint, must be 0): key commits that lack or break the trailer rules.

Every commit but the root `init` and a final `done` is a key commit and must have: a
`{session}:` subject prefix; `Keys` a JSON string; `Kind` `text` (1..16 characters, none of
them a control character) or `ctrl` (one allow-listed key name); `Seq` 1, 2, 3, ... per
session; `Time` a number of unix seconds. Each trailer appears once. A commit counts once
however many rules it breaks.

A control character inside text (C0 below 0x20, DEL and C1 0x7F-0x9F) is a control key in
disguise: `\x1a` suspends a job like the refused `C-z`, `\r` submits like `Enter`. The
recorder refuses such sends; a trajectory recorded by another tool is held to the same rule.

>>> from validators.trajectory import Trajectory
>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     compute(traj), findings(traj)[:1]
(1, [Finding(sha='3f2a...', subject='h2_writer: x', problems=('Seq 3, expected 2',))])
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from validators.cli import metric_main
from validators.trailers import TRAILER_NAMES
from validators.trajectory import Commit, Trajectory

MAX_TEXT = 16
CTRL_KEYS = frozenset({"Enter", "C-c", "C-d", "C-u", "C-l", "Escape", "BSpace", "Tab",
                       "Up", "Down", "Left", "Right", "Home", "End"})


def is_control(char: str) -> bool:
    """C0 controls, DEL and C1 controls: what a terminal reads as a key, not as text.

    >>> is_control("\\r"), is_control("\\x1a"), is_control("\\x9b"), is_control("é")
    (True, True, True, False)
    """
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0


@dataclass(frozen=True)
class Finding:
    """One key commit that breaks the rules, with every reason found."""

    sha: str
    subject: str
    problems: tuple[str, ...]


def problems(commit: Commit, expected_seq: int | None) -> list[str]:
    """The rules `commit` breaks; `expected_seq` is the Seq it must carry (None: unchecked)."""
    t = commit.trailers
    found: list[str] = []
    if commit.session is None:
        found.append("subject has no session prefix")
    missing = [name for name in TRAILER_NAMES if name not in t.fields]
    if missing:
        found.append("missing " + ", ".join(missing))
    if t.repeated:
        found.append("repeated " + ", ".join(sorted(t.repeated)))
    keys = t.keys()
    if "Keys" in t.fields and keys is None:
        found.append("Keys is not a JSON string")
    if "Kind" in t.fields and t.kind not in ("text", "ctrl"):
        found.append(f"unknown Kind {t.kind!r}")
    if keys is not None and t.kind == "text" and not 1 <= len(keys) <= MAX_TEXT:
        found.append(f"text of {len(keys)} characters")
    control = next((c for c in keys or "" if is_control(c)), None) if t.kind == "text" else None
    if control is not None:
        found.append(f"text holding the control character {control!r}")
    if keys is not None and t.kind == "ctrl" and keys not in CTRL_KEYS:
        found.append(f"ctrl key {keys!r} not allowed")
    seq = t.seq()
    if "Seq" in t.fields and seq is None:
        found.append("Seq is not an integer")
    elif seq is not None and expected_seq is not None and seq != expected_seq:
        found.append(f"Seq {seq}, expected {expected_seq}")
    if "Time" in t.fields and t.time() is None:
        found.append("Time is not a number")
    return found


def findings(traj: Trajectory) -> list[Finding]:
    """Every key commit that breaks a rule, oldest first."""
    out: list[Finding] = []
    position: dict[str, int] = {}       # key commits seen per session
    last_seq: dict[str, int | None] = {}
    for commit in traj.key_commits:
        expected = None
        if commit.session is not None:
            count = position[commit.session] = position.get(commit.session, 0) + 1
            previous = last_seq.get(commit.session)
            expected = previous + 1 if previous is not None else count
            last_seq[commit.session] = commit.trailers.seq()
        found = problems(commit, expected)
        if found:
            out.append(Finding(commit.sha, commit.subject, tuple(found)))
    return out


def compute(traj: Trajectory) -> int:
    """Number of key commits that lack or break the `Keys`/`Kind`/`Seq`/`Time` rules."""
    return len(findings(traj))


if __name__ == "__main__":
    sys.exit(metric_main("keys_audit", compute, per_session=False))
