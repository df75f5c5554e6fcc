"""`syntax_ratio`: fraction of a session's commits whose tree parses (maximise).

A commit counts as valid when every `*.py` file of its tree (outside `.captures/` and
`.tower/`) parses with `ast.parse(blob_bytes)`; a tree with no `.py` file is valid. The
tree state is carried along the history from each commit's changes; verdicts are cached
per blob and shared by every session scored from the same `Trajectory`.

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
from validators.trajectory import Commit, Trajectory, is_code


class _Verdicts:
    """Parse verdict per blob id, with the last version asked about per path as a hint."""

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


def verdicts(traj: Trajectory, commits: Sequence[Commit]) -> list[bool]:
    """For each commit of `commits`: does every `.py` file of its tree parse?"""
    judge = traj.memo("syntax_ratio", lambda: _Verdicts(traj))
    traj.prefetch_code()
    targets = {c.index for c in commits}
    py: dict[str, str] = {}
    out: list[bool] = []
    for commit in traj.commits:
        for change in commit.changes:
            if change.path.endswith(".py") and is_code(change.path):
                if change.new is None:
                    py.pop(change.path, None)
                else:
                    py[change.path] = change.new
        if commit.index in targets:
            known = [judge.by_blob.get(sha) for sha in py.values()]
            out.append(False not in known and all(judge.valid(p, s) for p, s in py.items()))
    return out


def measure(traj: Trajectory, commits: Sequence[Commit]) -> float | None:
    """Valid commits / commits; None when there are no commits."""
    if not commits:
        return None
    return sum(verdicts(traj, commits)) / len(commits)


def compute(traj: Trajectory, session: str) -> float:
    """Fraction of the commits of `session` at which every `.py` file parses."""
    commits = traj.commits_of(session)
    return sum(verdicts(traj, commits)) / len(commits)


if __name__ == "__main__":
    sys.exit(metric_main("syntax_ratio", compute, per_session=True))
