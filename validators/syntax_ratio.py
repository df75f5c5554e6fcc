"""`syntax_ratio`: how often a session's code changes leave every `.py` file parseable (maximise).

Only the session's *code-changing* commits are judged: those whose `*.py` content (outside
`.captures/` and `.tower/`, regular files only) differs from the previous commit's - the
previous commit of the whole history, whichever session made it. A key that changes no
code (a `C-l`, a command typed at a prompt) says nothing about the session's typing, so
padding a trajectory with thousands of such keys can neither raise nor lower the ratio. A
judged commit is valid when every `*.py` file of its tree parses with `ast.parse(blob
bytes)`. A session that changes no code scores 1.

The tree state is carried along the history from each commit's changes; verdicts are
cached per blob (and per top-level statement, `validators.parsecheck`) and shared by every
session scored from the same `Trajectory`.

>>> from validators.trajectory import Trajectory
>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     compute(traj, "h2_writer")
0.125
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

from validators.cli import metric_main
from validators.parsecheck import ParseCache
from validators.trajectory import Commit, Trajectory, is_python


class Verdicts:
    """Parse verdict per blob id, with the last version asked about per path as a hint.

    Shared per trajectory (`judge(traj)`), so `self_read` reuses the same verdicts.
    """

    def __init__(self, traj: Trajectory) -> None:
        self.traj = traj
        self.cache = ParseCache()
        self.by_blob: dict[str, bool] = {}
        self.last: dict[str, str] = {}

    def valid(self, path: str, sha: str) -> bool:
        ok = self.by_blob.get(sha)
        if ok is None:
            hint = self.last.get(path)
            previous = self.traj.blob(hint) if hint is not None else None
            ok = self.by_blob[sha] = self.cache.valid(self.traj.blob(sha), previous)
            self.last[path] = sha
        return ok


def judge(traj: Trajectory) -> Verdicts:
    """The trajectory's shared parse verdicts."""
    return traj.memo("syntax_ratio", lambda: Verdicts(traj))


def changes_code(commit: Commit) -> bool:
    """Whether `commit` changes the content of some `*.py` file (added, edited or removed)."""
    return any(c.old != c.new and is_python(c.path) for c in commit.changes)


def verdicts(traj: Trajectory, commits: Sequence[Commit]) -> list[bool | None]:
    """For each commit of `commits`: None when it changes no code, else whether every `.py`
    file of its tree parses."""
    verdict = judge(traj)
    traj.prefetch_code()
    targets = {c.index for c in commits}
    py: dict[str, str] = {}
    out: list[bool | None] = []
    for commit in traj.commits:
        changed = False
        for change in commit.changes:
            if change.old != change.new and is_python(change.path):
                changed = True
                if change.new is None:
                    py.pop(change.path, None)
                else:
                    py[change.path] = change.new
        if commit.index in targets:
            if not changed:
                out.append(None)
                continue
            known = [verdict.by_blob.get(sha) for sha in py.values()]
            out.append(False not in known and all(verdict.valid(p, s) for p, s in py.items()))
    return out


def ratio(judged: Sequence[bool | None]) -> float:
    """Valid / judged, ignoring None (no code change); 1.0 when nothing was judged.

    >>> ratio([None, True, False, None, True, True]), ratio([None, None])
    (0.75, 1.0)
    """
    real = [v for v in judged if v is not None]
    return sum(real) / len(real) if real else 1.0


def measure(traj: Trajectory, commits: Sequence[Commit]) -> float | None:
    """The ratio over `commits`; None when there are no commits at all."""
    if not commits:
        return None
    return ratio(verdicts(traj, commits))


def compute(traj: Trajectory, session: str) -> float:
    """Fraction of the code-changing commits of `session` at which every `.py` file parses."""
    return ratio(verdicts(traj, traj.commits_of(session)))


if __name__ == "__main__":
    sys.exit(metric_main("syntax_ratio", compute, per_session=True))
