"""Test-only species: ZDT1 on a coarse grid (2 variables, steps of 0.25: 25 genomes in all),
so that variation keeps making genomes the run has evaluated before."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from populations.numeric import NumericSpecies


class GridNumeric(NumericSpecies):
    name = "grid_numeric"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(problem="zdt1", n_var=2, mut_indpb=1.0, **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def _snap(x: np.ndarray) -> np.ndarray:
        return NumericSpecies._freeze(np.clip(np.round(np.asarray(x) * 4) / 4, 0.0, 1.0))

    def sample(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        return [self._snap(x) for x in super().sample(n, rng)]

    def mate(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]],
             rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self._snap(a), self._snap(b)) for a, b in super().mate(pairs, rng)]

    def mutate(self, genomes: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        return [self._snap(g) for g in super().mutate(genomes, rng)]
