"""`code_bytes[n]`: byte size of `h{n}.py` in the final commit, for n = 1..N.

None for a level whose file is missing.

>>> from validators.trajectory import Trajectory
>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     compute(traj)
{1: 412, 2: 1630, 3: 1702}
"""
from __future__ import annotations

import sys

from validators.cli import metric_main
from validators.trajectory import Trajectory


def compute(traj: Trajectory) -> dict[int, int | None]:
    """Bytes of each level's file in the final commit, levels 1..depth."""
    files = traj.level_files
    return {n: (len(traj.blob(files[n])) if n in files else None)
            for n in range(1, traj.depth + 1)}


if __name__ == "__main__":
    sys.exit(metric_main("code_bytes", compute, per_session=False))
