"""`idle_keys` (per session, minimise): key sends that changed nothing at all.

A key of session S is idle when, after it, neither the code nor S's pane changed:

- code: no `*.py` file (outside `.captures/`/`.tower/`, regular files only) differs from
  the previous commit of the whole history, whichever session made it;
- pane: the capture this key recorded (`.captures/S/{seq}.txt`) has the same text as S's
  previous capture; a session's first key compares with an empty screen, so it is idle
  only when its capture is empty. A key without a capture counts as an empty screen.

Idle keys are padding: they inflate a session's commit count (and dilute per-commit
ratios) without doing work. Comparing captures by blob id is exact: equal text, equal id.

>>> from validators.trajectory import Trajectory
>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     compute(traj, "h2_writer")
3
"""
from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence

from validators.cli import metric_main
from validators.syntax_ratio import changes_code
from validators.trajectory import Commit, Trajectory


def _empty_blob(sha: str) -> str:
    """The id of the empty blob in the hash the repository uses (sha1 or sha256)."""
    algo = hashlib.sha256 if len(sha) == 64 else hashlib.sha1
    return algo(b"blob 0\0").hexdigest()


def idle(traj: Trajectory, commits: Sequence[Commit]) -> list[bool]:
    """For each key commit of one session (oldest first): was its key idle?"""
    out: list[bool] = []
    previous: str | None = None        # the previous screen; None = empty
    for commit in commits:
        sha = traj.captures.get(commit.index)
        screen = None if sha is None or sha == _empty_blob(sha) else sha
        out.append(screen == previous and not changes_code(commit))
        previous = screen
    return out


def measure(traj: Trajectory, commits: Sequence[Commit]) -> int:
    """Number of idle keys among `commits` (one session's, oldest first)."""
    return sum(idle(traj, commits))


def compute(traj: Trajectory, session: str) -> int:
    """Number of keys of `session` after which neither the code nor its pane changed."""
    return measure(traj, traj.commits_of(session))


if __name__ == "__main__":
    sys.exit(metric_main("idle_keys", compute, per_session=True))
