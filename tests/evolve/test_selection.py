"""Selection helpers: constrained ranks, crowding and hypervolume against pymoo's own."""
from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from evolve.selection import hypervolume, rank_and_crowding


def test_feasible_ranks_are_pymoo_fronts_and_infeasible_follow_by_violation() -> None:
    rng = np.random.default_rng(0)
    F = rng.random((30, 2))
    CV = np.zeros(30)
    CV[[3, 7, 11]] = [2.0, 1.0, 2.0]
    rank, crowding = rank_and_crowding(F, CV)
    feasible = np.flatnonzero(CV == 0)
    fronts = NonDominatedSorting().do(F[feasible])
    for k, front in enumerate(fronts):
        assert set(np.flatnonzero(rank == k)) == set(feasible[front])
    n = len(fronts)
    assert rank[7] == n and rank[3] == rank[11] == n + 1
    assert np.isnan(crowding[[3, 7, 11]]).all() and not np.isnan(crowding[feasible]).any()


def test_hypervolume_is_pymoos_over_feasible_points() -> None:
    F = np.array([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1], [0.0, 0.0]])
    CV = np.array([0.0, 0.0, 0.0, 5.0])
    ref = np.array([1.0, 1.0])
    assert hypervolume(F, CV, ref) == HV(ref_point=ref)(F[:3])
    assert hypervolume(F, np.ones(4), ref) == 0.0
    assert hypervolume(F, CV, None) is None
