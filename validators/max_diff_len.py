"""`max_diff_len`: the largest edit between consecutive commits of a session (minimise).

For each pair of adjacent commits *of the session* (other sessions' commits in between
are folded in), the code trees are compared file by file: characters inserted plus
deleted (indel distance of the UTF-8 text, each undecodable byte one character), an
added or deleted file counting its whole length, a rename counting as delete plus add.
`.captures/` and `.tower/` are not code. 0 with fewer than two commits.

>>> from validators.trajectory import Trajectory
>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     compute(traj, "h2_writer")
17
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

from validators.cli import metric_main
from validators.text import indel_size
from validators.trajectory import Commit, Trajectory, is_code


def _text(traj: Trajectory, sha: str | None) -> str:
    return "" if sha is None else traj.text(sha)


def sizes(traj: Trajectory, commits: Sequence[Commit]) -> list[int]:
    """Edit size from each commit of `commits` to the next one (len(commits) - 1 values)."""
    traj.prefetch_code()
    targets = {c.index for c in commits}
    out: list[int] = []
    tree: dict[str, str] = {}
    before: dict[str, str | None] = {}  # path -> blob at the previous target, if touched since
    started = False
    for commit in traj.commits:
        for change in commit.changes:
            if not is_code(change.path):
                continue
            before.setdefault(change.path, change.old)
            if change.new is None:
                tree.pop(change.path, None)
            else:
                tree[change.path] = change.new
        if commit.index not in targets:
            continue
        if started:
            out.append(sum(indel_size(_text(traj, old), _text(traj, tree.get(path)))
                           for path, old in before.items() if old != tree.get(path)))
        started = True
        before = {}
    return out


def measure(traj: Trajectory, commits: Sequence[Commit]) -> int:
    """Largest edit size between adjacent commits of `commits`; 0 with fewer than two."""
    return max(sizes(traj, commits), default=0)


def compute(traj: Trajectory, session: str) -> int:
    """Largest edit size between adjacent commits of `session`."""
    return measure(traj, traj.commits_of(session))


if __name__ == "__main__":
    sys.exit(metric_main("max_diff_len", compute, per_session=True))
