"""Selection helpers: the fronts table's ranks and crowding, and hypervolume, against pymoo's own."""
from __future__ import annotations

import numpy as np
import pytest
from pymoo.indicators.hv import HV
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from evolve.selection import fronts, hypervolume, make_algorithm, tell
from populations.numeric import NumericSpecies


def _evolved(name: str, generations: int) -> object:
    """A pymoo algorithm after `generations` ask/tell rounds on ZDT1, all but one in eight
    of every generation made infeasible at one of two levels of violation (so that both
    feasible and infeasible individuals survive)."""
    species = NumericSpecies("zdt1", n_var=6)
    algorithm = make_algorithm(name, species, pop_size=20, n_offsprings=None, n_obj=2, n_ieq_constr=2,
                               generations=generations, seed=2, partitions=6)
    for _ in range(generations):
        off = algorithm.ask()
        F = species.problem.evaluate(np.stack([ind.X[0].genome for ind in off]))  # (n, 2)
        k = np.arange(len(off))
        G = np.zeros((len(off), 2))
        G[:, 1] = np.where(k % 8 == 0, 0.0, np.where(k % 2 == 0, 1.0, 2.0))
        tell(algorithm, off, F, G)
    return algorithm


@pytest.mark.parametrize("name", ["nsga2", "nsga3"])
def test_ranks_are_constrained_non_dominated_fronts(name: str) -> None:
    algorithm = _evolved(name, 6)
    pop = algorithm.pop  # type: ignore[attr-defined]
    F, CV = pop.get("F"), pop.get("CV")[:, 0]
    rank, crowding = fronts(algorithm)  # type: ignore[arg-type]
    feasible = np.flatnonzero(CV <= 0)
    expected = NonDominatedSorting().do(F[feasible])
    for k, front in enumerate(expected):
        assert set(np.flatnonzero(rank == k)) == set(feasible[front])
    bad = np.flatnonzero(CV > 0)
    assert len(bad) and len(feasible)  # both kinds survived: the test shows both
    levels = np.unique(CV[bad])
    assert list(rank[bad]) == [len(expected) + int(np.searchsorted(levels, cv)) for cv in CV[bad]]
    assert np.isnan(crowding[bad]).all() and not np.isnan(crowding[feasible]).any()


def test_nsga2_crowding_is_what_its_survival_used() -> None:
    algorithm = _evolved("nsga2", 6)
    pop = algorithm.pop  # type: ignore[attr-defined]
    _, crowding = fronts(algorithm)  # type: ignore[arg-type]
    feasible = pop.get("CV")[:, 0] <= 0
    assert list(crowding[feasible]) == [ind.get("crowding") for ind, f in zip(pop, feasible) if f]


def test_nsga3_crowding_is_nsga2s_within_each_front() -> None:
    algorithm = _evolved("nsga3", 6)
    pop = algorithm.pop  # type: ignore[attr-defined]
    F, feasible = pop.get("F"), pop.get("CV")[:, 0] <= 0
    rank, crowding = fronts(algorithm)  # type: ignore[arg-type]
    for k in np.unique(rank[feasible]):
        members = np.flatnonzero(rank == k)
        expected = calc_crowding_distance(F[members]) if len(members) > 2 else np.full(len(members), np.inf)
        np.testing.assert_array_equal(crowding[members], expected)


def test_hypervolume_is_pymoos_over_feasible_points() -> None:
    F = np.array([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1], [0.0, 0.0]])
    CV = np.array([0.0, 0.0, 0.0, 5.0])
    ref = np.array([1.0, 1.0])
    assert hypervolume(F, CV, ref) == HV(ref_point=ref)(F[:3])
    assert hypervolume(F, np.ones(4), ref) == 0.0
    assert hypervolume(F, CV, None) is None
