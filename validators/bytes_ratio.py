"""`bytes_ratio[n]`: `code_bytes[n+1] / code_bytes[n]` for n = 2..N-1.

None where either file is missing or `h{n}.py` is empty.

>>> from validators.trajectory import Trajectory
>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     compute(traj)
{2: 1.0441717791411044}
"""
from __future__ import annotations

import sys

from validators import code_bytes
from validators.cli import metric_main
from validators.trajectory import Trajectory


def ratios(sizes: dict[int, int | None]) -> dict[int, float | None]:
    """Level-over-level size ratios from `code_bytes` values (keys 1..N).

    >>> ratios({1: 10, 2: 100, 3: 150, 4: None})
    {2: 1.5, 3: None}
    """
    out: dict[int, float | None] = {}
    for n in range(2, max(sizes, default=0)):
        low, high = sizes.get(n), sizes.get(n + 1)
        out[n] = high / low if low and high is not None else None
    return out


def compute(traj: Trajectory) -> dict[int, float | None]:
    """`code_bytes[n+1] / code_bytes[n]` for each n from 2 to depth - 1."""
    return ratios(code_bytes.compute(traj))


if __name__ == "__main__":
    sys.exit(metric_main("bytes_ratio", compute, per_session=False))
