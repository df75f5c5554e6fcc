"""`avg_interval`: mean seconds between a session's key sends (minimise).

`(Time_last - Time_first) / (count - 1)` over the session's commits, from the `Time`
trailers (exact decimals, so microseconds survive); `inf` with fewer than two commits.
A commit whose `Time` is missing or unparseable is left out (`keys_audit` counts it).

>>> from validators.trajectory import Trajectory
>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     compute(traj, "h2_writer")
0.0213
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

from validators.cli import metric_main
from validators.trajectory import Commit, Trajectory


def measure(commits: Sequence[Commit]) -> float:
    """Mean interval over these commits (oldest first); `inf` when fewer than two have a time."""
    times = [t for t in (c.trailers.time() for c in commits) if t is not None]
    if len(times) < 2:
        return float("inf")
    return float((times[-1] - times[0]) / (len(times) - 1))


def compute(traj: Trajectory, session: str) -> float:
    """Mean seconds between consecutive commits of `session`."""
    return measure(traj.commits_of(session))


if __name__ == "__main__":
    sys.exit(metric_main("avg_interval", compute, per_session=True))
