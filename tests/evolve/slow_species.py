"""Test-only species: pymoo's ZDT1 with a deliberate delay, a crash, a hang or an error per individual.

Registered with cloudpickle by value (see conftest.py) so Ray workers need not import it.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from populations.base import EvalItem, Outcome
from populations.numeric import NumericSpecies


class SlowNumeric(NumericSpecies):
    """One individual per actor call, each taking `delay` seconds."""

    name = "slow_numeric"
    batch_size = 1

    def __init__(self, delay: float = 1.0, crash: Sequence[str] = (), hang: Sequence[str] = (),
                 error: Sequence[str] = (), **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.delay = delay
        self.crash = set(crash)
        self.hang = set(hang)
        self.error = set(error)

    def evaluate(self, items: Sequence[EvalItem], *, workdir: Path, timeout: float,
                 run_id: str) -> list[Outcome]:
        for it in items:
            if it.individual_id in self.crash:
                os._exit(3)  # the worker process dies: Ray reports the actor dead
            if it.individual_id in self.hang:
                time.sleep(3600)
            if it.individual_id in self.error:
                raise ValueError("no such thing")  # a species that breaks its promise never to raise
        time.sleep(self.delay * len(items))
        outcomes = super().evaluate(items, workdir=workdir, timeout=timeout, run_id=run_id)
        # what the evaluation cost, as a real one would report
        return [replace(o, wall_seconds=o.wall_seconds + self.delay) for o in outcomes]
