"""The `numeric` species: pymoo's test problems (ZDT, DTLZ, ...) over real vectors.

It exists to hold the engine against pymoo itself: same problem, same population size,
generations and seed, comparable hypervolume.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from deap import base  # type: ignore[import-untyped]  # DEAP ships no type information

from populations.base import EvalItem, Outcome, Species
from populations.errors import SpeciesError
from populations.objectives import Constraint
from populations.operators.real import cx_sbx, mut_polynomial


class NumericSpecies(Species[np.ndarray]):
    """Genome: a float vector within the problem's bounds."""

    name = "numeric"
    batch_size = 4096  # evaluation is vectorised: one actor call takes a whole share
    in_driver = True  # microseconds of numpy per individual: `evaluation.actors: 0` is allowed

    def __init__(self, problem: str = "zdt1", n_var: int | None = None, n_obj: int | None = None,
                 eta_c: float = 15.0, eta_m: float = 20.0, crossover_prob: float = 0.9,
                 cx_indpb: float = 0.5, mut_indpb: float | None = None) -> None:
        from pymoo.problems import get_problem  # type: ignore[import-untyped]  # pymoo ships no type information

        kwargs: dict[str, Any] = {}
        if n_var is not None:
            kwargs["n_var"] = n_var
        if n_obj is not None:
            kwargs["n_obj"] = n_obj
        try:
            self.problem = get_problem(problem, **kwargs)
        except Exception as exc:  # noqa: BLE001 - pymoo raises bare Exception for unknown names
            raise SpeciesError(f"cannot build problem {problem!r}: {exc}", species=self.name) from None
        if self.problem.xl is None or self.problem.xu is None:
            raise SpeciesError(f"problem {problem!r} has no box bounds", species=self.name)
        self.problem_name = problem
        self.low = np.asarray(self.problem.xl, dtype=float)
        self.up = np.asarray(self.problem.xu, dtype=float)
        self.crossover_prob = crossover_prob
        n = self.problem.n_var
        # DEAP's toolbox holds the operators with their parameters (no creator, no global random)
        self.toolbox = base.Toolbox()
        self.toolbox.register("mate", cx_sbx, eta=eta_c, low=self.low, up=self.up, indpb=cx_indpb)
        self.toolbox.register("mutate", mut_polynomial, eta=eta_m, low=self.low, up=self.up,
                              indpb=mut_indpb if mut_indpb is not None else min(0.5, 1.0 / n))

    # --- metrics ------------------------------------------------------------------------
    @property
    def directions(self) -> Mapping[str, str | None]:  # type: ignore[override]
        d: dict[str, str | None] = {f"f{k + 1}": "min" for k in range(self.problem.n_obj)}
        d.update({f"g{k + 1}": None for k in range(self.problem.n_ieq_constr)})
        return d

    def default_objectives(self) -> list[str]:
        return [f"f{k + 1}" for k in range(self.problem.n_obj)]

    def default_constraints(self) -> list[Constraint]:
        return [Constraint(f"g{k + 1}", le=0.0) for k in range(self.problem.n_ieq_constr)]

    # --- genome form ------------------------------------------------------------------
    def to_data(self, genome: np.ndarray) -> list[float]:
        return [float(v) for v in genome]

    def canonical_json(self, genome: np.ndarray) -> str:
        # exactly json.dumps(list, separators=(",", ":")) for finite floats, ~10x faster
        return "[" + ",".join(map(repr, genome.tolist())) + "]"

    def from_data(self, data: Any) -> np.ndarray:
        if not isinstance(data, list) or len(data) != self.problem.n_var:
            raise SpeciesError(f"genome must be a list of {self.problem.n_var} numbers", species=self.name)
        x = np.asarray(data, dtype=float)
        if not np.all(np.isfinite(x)) or np.any(x < self.low) or np.any(x > self.up):
            raise SpeciesError("genome lies outside the problem's bounds", species=self.name)
        return self._freeze(x)

    @staticmethod
    def _freeze(x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=float)
        x.flags.writeable = False
        return x

    def describe(self, genome: np.ndarray) -> str:
        head = ", ".join(f"{v:.3f}" for v in genome[:3])
        return f"[{head}{', ...' if len(genome) > 3 else ''}]"

    # --- variation ----------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        X = self.low + rng.random((n, self.problem.n_var)) * (self.up - self.low)  # (n, n_var)
        return [self._freeze(x) for x in X]

    def mate(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]],
             rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
        if not pairs:
            return []
        X1 = np.stack([a for a, _ in pairs])  # (n_matings, n_var)
        X2 = np.stack([b for _, b in pairs])
        C1, C2 = self.toolbox.mate(X1, X2, rng)
        return [(self._freeze(c1), self._freeze(c2)) for c1, c2 in zip(C1, C2)]

    def mutate(self, genomes: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        if not genomes:
            return []
        Y = self.toolbox.mutate(np.stack(genomes), rng)
        return [self._freeze(y) for y in Y]

    # --- evaluation -----------------------------------------------------------------------
    def evaluate(self, items: Sequence[EvalItem], *, workdir: Path, timeout: float,
                 run_id: str) -> list[Outcome]:
        if not items:
            return []
        start = time.perf_counter()
        try:
            X = np.stack([np.asarray(it.genome, dtype=float) for it in items])
            out = self.problem.evaluate(X, return_as_dictionary=True)
        except Exception as exc:  # noqa: BLE001 - the actor boundary: a failure becomes a result
            wall = (time.perf_counter() - start) / len(items)
            return [Outcome(it.individual_id, "failed", error=f"{type(exc).__name__}: {exc}",
                            wall_seconds=wall) for it in items]
        F = np.atleast_2d(out["F"])  # (n, n_obj)
        Gc = out.get("G")
        Gc = np.atleast_2d(Gc) if Gc is not None and np.size(Gc) else np.zeros((len(items), 0))
        wall = (time.perf_counter() - start) / len(items)
        outcomes = []
        for k, it in enumerate(items):
            metrics: dict[str, float | int | None] = {f"f{j + 1}": _num(F[k, j]) for j in range(F.shape[1])}
            metrics.update({f"g{j + 1}": _num(Gc[k, j]) for j in range(Gc.shape[1])})
            outcomes.append(Outcome(it.individual_id, "ok", metrics=metrics, wall_seconds=wall))
        return outcomes


def _num(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None
