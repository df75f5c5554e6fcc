"""Islands: several populations of one species evolving side by side, migrating their best
along a ring.

With `islands.count: n > 1` the engine runs n lanes of the species, each its own pymoo
algorithm (island 0 seeded by the run seed, the others by seeds drawn from it) with the
configured population; ids carry the island (`i2-g003-001`). After every `interval`-th
generation (not after the last) island k sends copies of its `migrants` best survivors
(rank, then crowding) to island k+1 mod n, whose survival takes them in against its own
population. Migration reads only the algorithms' states, so a resumed run replays it as
the straight run did.

The store keeps the island each individual was born on (`islands`), every island's
surviving population with its own ranks (`island_fronts`), and the migrations; `fronts`
and `generations` hold the whole run: ranks and hypervolume over the union of the islands.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymoo.core.algorithm import Algorithm  # type: ignore[import-untyped]
    from pymoo.core.population import Population  # type: ignore[import-untyped]


def island_prefix(k: int) -> str:
    return f"i{k}-"


def due(generation: int, interval: int, generations: int) -> bool:
    """Whether the islands migrate after `generation` (never after the last one)."""
    return (generation + 1) % interval == 0 and generation + 1 < generations


def best(pop: Population, n: int) -> list[int]:
    """Indices of the n best survivors: feasible first, by rank, then most crowded last."""
    CV = pop.get("CV")[:, 0].astype(float)
    ranks = [r if r is not None else np.inf for r in pop.get("rank")]
    crowding = [c if c is not None and np.isfinite(c) else (np.inf if c is not None else 0.0)
                for c in pop.get("crowding")]
    order = sorted(range(len(pop)), key=lambda k: (CV[k] > 0, CV[k], ranks[k], -crowding[k], k))
    return order[:n]


def migrate(algorithms: Sequence[Algorithm], migrants: int) -> list[tuple[str, int, int]]:
    """Island k's best go to island k+1 (copies: each island's survival writes its own ranks
    on its members); each receiving island's survival takes them in. Returns (individual,
    from, to) in ring order."""
    from pymoo.core.population import Population

    outgoing = [[algorithm.pop[k].copy() for k in best(algorithm.pop, migrants)] for algorithm in algorithms]
    moved: list[tuple[str, int, int]] = []
    n = len(algorithms)
    for k in range(n):
        to = (k + 1) % n
        target = algorithms[to]
        present = {ind.X[0].id for ind in target.pop}
        arriving = [ind for ind in outgoing[k] if ind.X[0].id not in present]  # already there: stays once
        if not arriving:
            continue
        merged = Population.merge(target.pop, Population.create(*arriving))
        target.pop = target.survival.do(target.problem, merged, n_survive=len(target.pop), algorithm=target,
                                        random_state=target.random_state)
        moved.extend((ind.X[0].id, k, to) for ind in arriving)
    return moved


def overall(pops: Sequence[Population]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The islands' populations taken together (an individual on two islands once): ids,
    F, CV, and rank and crowding as `evolve.selection.fronts` gives them for one population."""
    from pymoo.operators.survival.rank_and_crowding.metrics import (  # type: ignore[import-untyped]
        get_crowding_function,
    )
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting  # type: ignore[import-untyped]

    seen: set[str] = set()
    ids, Fs, CVs = [], [], []
    for pop in pops:
        for ind in pop:
            cid = ind.X[0].id
            if cid in seen:
                continue
            seen.add(cid)
            ids.append(cid)
            Fs.append(np.asarray(ind.F, dtype=float))
            CVs.append(float(ind.CV[0]))
    F, CV = np.stack(Fs), np.array(CVs)
    rank = np.full(len(ids), -1, dtype=int)
    crowding = np.full(len(ids), np.nan)
    feasible = np.flatnonzero(CV <= 0)
    distance = get_crowding_function("cd")
    n_fronts = 0
    if len(feasible):
        for r, front in enumerate(NonDominatedSorting().do(F[feasible])):
            members = feasible[front]
            rank[members] = r
            crowding[members] = distance.do(F[members], n_remove=0)
            n_fronts = r + 1
    bad = np.flatnonzero(CV > 0)
    rank[bad] = n_fronts + np.searchsorted(np.unique(CV[bad]), CV[bad])
    return ids, F, CV, rank, crowding
