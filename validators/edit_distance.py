"""`edit_distance[n]`: Levenshtein distance of `h{n}.py` to `h{n-1}.py` over the longer
length, n = 2..N (maximise: a level that copies its child scores near 0).

Texts are the final commit's contents decoded as UTF-8 (one character per undecodable
byte). None where either file is missing.

>>> from validators.trajectory import Trajectory
>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     compute(traj)
{2: 0.71, 3: 0.05}
"""
from __future__ import annotations

import sys

from rapidfuzz.distance import Levenshtein

from validators.cli import metric_main
from validators.trajectory import Trajectory


def compute(traj: Trajectory) -> dict[int, float | None]:
    """Normalised Levenshtein distance between consecutive levels' files, levels 2..depth."""
    files = traj.level_files
    out: dict[int, float | None] = {}
    for n in range(2, traj.depth + 1):
        if n in files and n - 1 in files:
            upper, lower = traj.text(files[n]), traj.text(files[n - 1])
            out[n] = float(Levenshtein.normalized_distance(upper, lower))
        else:
            out[n] = None
    return out


if __name__ == "__main__":
    sys.exit(metric_main("edit_distance", compute, per_session=False))
