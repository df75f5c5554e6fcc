"""`bytes_convergence`: `max over n >= 2 of |bytes_ratio[n] - 1|` (minimise).

Defined only for depth N >= 3 (None otherwise), and None when a ratio is undefined (a level
file missing or empty). A kernel tower whose levels are the same size scores 0.

>>> from validators.trajectory import Trajectory
>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     compute(traj)
0.0441717791411044
"""
from __future__ import annotations

import sys

from validators import bytes_ratio
from validators.cli import metric_main
from validators.trajectory import Trajectory


def converge(ratios: dict[int, float | None], depth: int) -> float | None:
    """The largest deviation from 1 among `ratios`; None below depth 3 or with a gap.

    >>> converge({2: 1.5, 3: 0.9}, 4), converge({}, 2)
    (0.5, None)
    """
    if depth < 3 or not ratios:
        return None
    values = list(ratios.values())
    if any(v is None for v in values):
        return None
    return max(abs(v - 1.0) for v in values if v is not None)


def compute(traj: Trajectory) -> float | None:
    """How far the level sizes are from a fixed point (0 = every level the same size)."""
    return converge(bytes_ratio.compute(traj), traj.depth)


if __name__ == "__main__":
    sys.exit(metric_main("bytes_convergence", compute, per_session=False))
