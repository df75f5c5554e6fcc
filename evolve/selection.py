"""pymoo wiring for object genomes: NSGA-II / NSGA-III driven by ask/tell.

The decision variable is one object per individual (a `Candidate`: genome + identity), so
X has shape (n, 1) and dtype object. The species supplies sampling and variation; pymoo
supplies mating selection, survival, constraint handling and the hypervolume indicator.

pymoo ships no type information (no `py.typed`): its imports carry
`type: ignore[import-untyped]`, and mypy sees its classes as Any.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pymoo.core.crossover import Crossover  # type: ignore[import-untyped]
from pymoo.core.duplicate import DuplicateElimination  # type: ignore[import-untyped]
from pymoo.core.mutation import Mutation  # type: ignore[import-untyped]
from pymoo.core.population import Population  # type: ignore[import-untyped]
from pymoo.core.problem import Problem  # type: ignore[import-untyped]
from pymoo.core.sampling import Sampling  # type: ignore[import-untyped]
from pymoo.core.survival import Survival  # type: ignore[import-untyped]
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding  # type: ignore[import-untyped]

from evolve.config import AnySpecies
from populations.base import Candidate

if TYPE_CHECKING:
    from pymoo.core.algorithm import Algorithm  # type: ignore[import-untyped]


class ObjectProblem(Problem):
    """The problem's shape only: evaluation happens outside pymoo (ask/tell)."""

    def __init__(self, n_obj: int, n_ieq_constr: int) -> None:
        super().__init__(n_var=1, n_obj=n_obj, n_ieq_constr=n_ieq_constr, vtype=object)

    def _evaluate(self, X: np.ndarray, out: dict[str, object], *args: object, **kwargs: object) -> None:
        raise RuntimeError("ObjectProblem is evaluated by the engine (ask/tell), not by pymoo")


def _column(cands: list[Candidate]) -> np.ndarray:
    X = np.empty((len(cands), 1), dtype=object)  # (n, 1)
    for k, c in enumerate(cands):
        X[k, 0] = c
    return X


class SpeciesSampling(Sampling):
    def __init__(self, species: AnySpecies) -> None:
        super().__init__()
        self.species = species

    def _do(self, problem: Problem, n_samples: int, *args: object, random_state: np.random.Generator,
            **kwargs: object) -> np.ndarray:
        genomes = self.species.sample(n_samples, random_state)
        return _column([Candidate.of(self.species, g, origin="sample") for g in genomes])


class SpeciesCrossover(Crossover):
    """Two parents -> two children; children remember their parents' ids."""

    def __init__(self, species: AnySpecies, prob: float) -> None:
        super().__init__(n_parents=2, n_offsprings=2, prob=prob)
        self.species = species

    def _do(self, problem: Problem, X: np.ndarray, *args: object, random_state: np.random.Generator,
            **kwargs: object) -> np.ndarray:
        _, n_matings, _ = X.shape  # (n_parents, n_matings, n_var=1)
        A, B = X[0, :, 0], X[1, :, 0]
        children = self.species.mate([(a.parent_genome, b.parent_genome) for a, b in zip(A, B)], random_state)
        Y = np.empty((2, n_matings, 1), dtype=object)
        for k, (c1, c2) in enumerate(children):
            parents = (A[k].id, B[k].id)
            Y[0, k, 0] = Candidate(c1, "", parents, origin="crossover")
            Y[1, k, 0] = Candidate(c2, "", parents, origin="crossover")
        return Y


class SpeciesMutation(Mutation):
    """Every offspring passes through the species' mutation (which decides per gene)."""

    def __init__(self, species: AnySpecies) -> None:
        super().__init__(prob=1.0)
        self.species = species

    def _do(self, problem: Problem, X: np.ndarray, *args: object, random_state: np.random.Generator,
            **kwargs: object) -> np.ndarray:
        cands: list[Candidate] = list(X[:, 0])
        genomes = self.species.mutate([c.parent_genome for c in cands], random_state)
        out = []
        parents: tuple[str, ...]
        for c, g in zip(cands, genomes):
            if c.id:  # a parent copied unchanged by the crossover step
                parents, origin = (c.id,), "mutation"
            else:
                parents, origin = c.parents, "crossover+mutation"
            out.append(Candidate.of(self.species, g, parents, origin=origin))
        return _column(out)


class HashDuplicates(DuplicateElimination):
    """Two individuals are duplicates when their genomes' hashes are equal."""

    def _do(self, pop: Population, other: Population | None, is_duplicate: np.ndarray) -> np.ndarray:
        hashes = [ind.X[0].hash for ind in pop]
        if other is None:
            seen: set[str] = set()
            for k, h in enumerate(hashes):
                if h in seen:
                    is_duplicate[k] = True
                seen.add(h)
        else:
            known = {ind.X[0].hash for ind in other}
            for k, h in enumerate(hashes):
                if h in known:
                    is_duplicate[k] = True
        return is_duplicate


class FastRankAndCrowding(RankAndCrowding):
    """pymoo's NSGA-II survival with the feasibility split done on one array.

    pymoo's `Survival.do` splits feasible from infeasible with `pop.get("F", "CV", "FEAS")`,
    three property look-ups per individual (FEAS recomputed each time). The engine always
    has a constraint (its own: the evaluation failed), so that split runs every generation;
    this does the same split — the same indices in the same order — from the cached CVs.
    Kept for what benchmarks/bench_engine.py measures ("around pymoo"): about 1 ms of
    pymoo's 2.8 ms a generation at population 100, some 4% of an in-driver ZDT1 run.
    """

    def do(self, problem: Problem, pop: Population, *args: object, n_survive: int | None = None,
           random_state: np.random.Generator | None = None, return_indices: bool = False,
           **kwargs: object) -> Population:
        if (not (self.filter_infeasible and problem.has_constraints()) or len(pop) == 0 or return_indices
                or random_state is None):  # pymoo's own path (it draws a default random state)
            return super().do(problem, pop, *args, n_survive=n_survive, random_state=random_state,
                              return_indices=return_indices, **kwargs)
        n_survive = min(len(pop) if n_survive is None else n_survive, len(pop))
        cv = np.array([ind.CV for ind in pop])  # (n, 1), as pop.get("CV")
        eps = np.array([ind.config.get("cv_eps", 0.0) for ind in pop])[:, None]
        b = cv <= eps  # as pop.get("FEAS")
        feas = np.where(b)[0]
        infeas = np.where(~b)[0]
        infeas = infeas[np.argsort(cv[infeas, 0])]
        if len(feas) == 0:
            survivors = Population()
        else:
            survivors = self._do(problem, pop[feas], *args, n_survive=min(len(feas), n_survive),
                                 random_state=random_state, **kwargs)
        n_remaining = n_survive - len(survivors)
        if n_remaining > 0:
            survivors = Population.merge(survivors, pop[infeas[:n_remaining]])
        return survivors


class Guarded(Survival):
    """Survival that keeps the reported front's members (`protected`, set by the engine
    before each tell; `evolve.replicates`): a member pymoo would drop takes the place of the
    worst unprotected survivor, so that only the guardrail decides when it leaves."""

    def __init__(self, inner: Survival) -> None:
        super().__init__(filter_infeasible=False)
        self.inner = inner
        self.protected: frozenset[str] = frozenset()

    def __getattr__(self, name: str) -> object:  # what pymoo reads of its survival (NSGA-III's `opt`)
        if name == "inner":  # not set yet (unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.inner, name)

    def do(self, problem: Problem, pop: Population, *args: object, n_survive: int | None = None,
           **kwargs: object) -> Population:
        out = self.inner.do(problem, pop, *args, n_survive=n_survive, **kwargs)
        kept = {ind.X[0].id for ind in out}
        missing = [ind for ind in pop if ind.X[0].id in self.protected and ind.X[0].id not in kept
                   and ind.CV[0] <= 0]
        if not missing:
            return out
        # the worst survivors make room: highest rank, then least crowded (NaN: infeasible, first)
        order = sorted((k for k, ind in enumerate(out) if ind.X[0].id not in self.protected),
                       key=lambda k: (-(out[k].get("rank") if out[k].get("rank") is not None else np.inf),
                                      -np.inf if out[k].get("crowding") is None else out[k].get("crowding")))
        room = set(order[:len(missing)])
        merged = Population.merge(Population.create(*[ind for k, ind in enumerate(out) if k not in room]),
                                  Population.create(*missing))
        return self.inner.do(problem, merged, *args, n_survive=len(merged), **kwargs)  # ranks again, keeps all


def make_algorithm(name: str, species: AnySpecies, *, pop_size: int, n_offsprings: int | None,
                   n_obj: int, n_ieq_constr: int, generations: int, seed: int,
                   partitions: int = 12, guarded: bool = False) -> Algorithm:
    """A set-up pymoo algorithm whose operators are the species' (ask/tell ready); `guarded`:
    its survival keeps the reported front's members (`Guarded`)."""
    ops: dict[str, object] = {
        "pop_size": pop_size, "n_offsprings": n_offsprings,
        "sampling": SpeciesSampling(species),
        "crossover": SpeciesCrossover(species, prob=getattr(species, "crossover_prob", 0.9)),
        "mutation": SpeciesMutation(species),
        "eliminate_duplicates": HashDuplicates(),
        "seed": seed,
    }
    if name == "nsga2":
        from pymoo.algorithms.moo.nsga2 import NSGA2  # type: ignore[import-untyped]

        algorithm = NSGA2(survival=FastRankAndCrowding(), **ops)
    elif name == "nsga3":
        from pymoo.algorithms.moo.nsga3 import NSGA3  # type: ignore[import-untyped]
        from pymoo.util.ref_dirs import get_reference_directions  # type: ignore[import-untyped]

        ref_dirs = get_reference_directions("das-dennis", n_obj, n_partitions=partitions)
        algorithm = NSGA3(ref_dirs=ref_dirs, **ops)
    else:
        raise ValueError(f"unknown algorithm {name!r}")
    if guarded:
        algorithm.survival = Guarded(algorithm.survival)
    problem = ObjectProblem(n_obj, n_ieq_constr)
    # the engine decides when to stop; pymoo's own termination must never cut a run short
    algorithm.setup(problem, termination=("n_gen", generations + 1), verbose=False)
    return algorithm


def use_species(algorithm: Algorithm, species: AnySpecies) -> None:
    """Bind an algorithm read back from a checkpoint to the run's own species object: the
    pickled copy it carries is frozen at checkpoint time, while the engine keeps teaching the
    run's species (`Species.learn`) and takes its proposals."""
    for op in (algorithm.initialization.sampling, algorithm.mating.crossover, algorithm.mating.mutation):
        op.species = species


def tell(algorithm: Algorithm, off: Population, F: np.ndarray, G: np.ndarray) -> None:
    """Give pymoo the evaluated offspring (F: (n, n_obj), G: (n, n_ieq_constr)), the way its
    ask/tell interface takes values computed elsewhere: a static problem evaluated on them.

    Setting the values and pymoo's `evaluated` bookkeeping by hand saves 0.4 ms a generation
    (benchmarks/bench_engine.py, "around pymoo"): within an engine run's noise, and not
    worth depending on pymoo's internals for."""
    from pymoo.core.evaluator import Evaluator  # type: ignore[import-untyped]
    from pymoo.problems.static import StaticProblem  # type: ignore[import-untyped]

    Evaluator().eval(StaticProblem(algorithm.problem, F=F, G=G), off)
    algorithm.tell(infills=off)


def resurvive(algorithm: Algorithm) -> None:
    """Rank the surviving population again after its objectives changed (re-evaluation's
    means): pymoo's survival over the same members, keeping all of them."""
    pop = algorithm.pop
    algorithm.pop = algorithm.survival.do(algorithm.problem, pop, n_survive=len(pop), algorithm=algorithm,
                                          random_state=algorithm.random_state)


def fronts(algorithm: Algorithm) -> tuple[np.ndarray, np.ndarray]:
    """Rank and crowding of each member of the surviving population, as pymoo's survival
    left them.

    Survival ranks the feasible members by non-dominated front, and NSGA-II's also gives
    them their crowding distance (within the whole front, before a front that did not fit
    was cut: the values selection used). It orders the infeasible members by violation
    without ranking them: here they are ranked after the feasible fronts, one rank per level
    of violation (Deb's constrained domination), with no crowding (NaN). NSGA-III keeps no
    crowding of its own; its members get NSGA-II's crowding distance within their front.
    """
    pop = algorithm.pop
    CV = pop.get("CV")[:, 0].astype(float)  # (n,)
    feasible = CV <= 0.0
    rank = np.array([r if f else -1 for r, f in zip(pop.get("rank"), feasible)], dtype=int)
    n_fronts = int(rank.max()) + 1 if feasible.any() else 0
    bad = np.flatnonzero(~feasible)
    rank[bad] = n_fronts + np.searchsorted(np.unique(CV[bad]), CV[bad])
    if isinstance(getattr(algorithm.survival, "inner", algorithm.survival), RankAndCrowding):
        crowding = np.array([c if f else np.nan for c, f in zip(pop.get("crowding"), feasible)], dtype=float)
    else:
        from pymoo.operators.survival.rank_and_crowding import metrics  # type: ignore[import-untyped]

        crowding = np.full(len(pop), np.nan)
        F = pop.get("F").astype(float)
        distance = metrics.get_crowding_function("cd")
        for k in range(n_fronts):
            members = np.flatnonzero(rank == k)
            crowding[members] = distance.do(F[members])
    return rank, crowding


def hypervolume(F: np.ndarray, CV: np.ndarray, ref_point: np.ndarray | None) -> float | None:
    """pymoo's HV of the feasible points (minimisation form); None without a reference."""
    if ref_point is None:
        return None
    from pymoo.indicators.hv import HV  # type: ignore[import-untyped]

    feasible = F[CV <= 0.0]
    if len(feasible) == 0:
        return 0.0
    return float(HV(ref_point=ref_point)(feasible.astype(float)))
