"""Test-only species: pymoo's ZDT1, whose generation 0 takes a second and whose later
generations wait for a gate file — a run a test can read while it is surely still going."""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from populations.base import EvalItem, Outcome
from populations.numeric import NumericSpecies


class GatedNumeric(NumericSpecies):
    name = "gated_numeric"

    def __init__(self, gate: str, first: float = 1.2, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.gate = Path(gate)
        self.first = first  # seconds generation 0 takes: enough for the engine to commit it at once

    def evaluate(self, items: Sequence[EvalItem], *, workdir: Path, timeout: float,
                 run_id: str) -> list[Outcome]:
        if any(it.individual_id.startswith("g000-") for it in items):
            time.sleep(self.first)
        else:
            deadline = time.monotonic() + 120  # a test that never opens the gate still ends
            while not self.gate.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return super().evaluate(items, workdir=workdir, timeout=timeout, run_id=run_id)
