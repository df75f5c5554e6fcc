"""Test-only species: ZDT1 whose objectives carry Gaussian noise drawn from each
evaluation's seed (a timing objective on a loaded node, in miniature), and that can fail a
given replicate."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from populations.base import EvalItem, Outcome
from populations.numeric import NumericSpecies


class NoisyNumeric(NumericSpecies):
    name = "noisy_numeric"

    def __init__(self, noise: float = 0.1, fail_replicate: int = 0, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.noise = noise
        self.fail_replicate = fail_replicate  # replicate k (item id ending .r{k}) fails; 0: none does

    def evaluate(self, items: Sequence[EvalItem], *, workdir: Path, timeout: float,
                 run_id: str) -> list[Outcome]:
        outcomes = super().evaluate(items, workdir=workdir, timeout=timeout, run_id=run_id)
        for item, out in zip(items, outcomes):
            if self.fail_replicate and item.individual_id.endswith(f".r{self.fail_replicate}"):
                out.status, out.metrics, out.error = "failed", {}, "the node went away"
                continue
            rng = np.random.default_rng(item.seed)
            for key in ("f1", "f2"):
                value = out.metrics.get(key)
                if isinstance(value, float):
                    out.metrics[key] = value + float(rng.normal(0.0, self.noise))
        return outcomes
