"""Timing calibrated per node (`evaluation.calibrate`).

Timing objectives (`avg_interval`: seconds between a tower's key sends) depend on the node
and its load as much as on the genome. Under `evaluation.calibrate` each evaluator (an
actor, or the driver with `evaluation.actors: 0`) times its species' fixed reference
evaluation (`Species.reference_timing`; towers: a fixed depth-2 tower, whose
`avg_interval@h2` is made of the same process starts, tmux round trips and git commits as
every evaluation's) when it starts, and again before an evaluation once the last one is
older than `evaluation.calibrate_every` seconds: a node's load changes while its actor
lives (`Clock`). A fixed CPU loop was tried first and dropped: on a loaded node it varied
more than the timing metrics it was meant to calibrate (benchmarks/RESULTS.md).

Every outcome carries its evaluator's reference; the driver stores, next to each raw timing
metric `m@level`, `m_norm@level` = raw / reference, and `reference_seconds`; selection
(objectives and constraints) reads the normalised value wherever the config names a timing
metric.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

NORM = "_norm"  # the normalised metric's base name: avg_interval@h2 -> avg_interval_norm@h2
REFERENCE = "reference_seconds"


class Clock:
    """An evaluator's reference: `measure()` taken when first asked and again once older than
    `every` seconds. A failed take (None) keeps the last good value."""

    def __init__(self, every: float, measure: Callable[[], float | None]) -> None:
        self.every = every
        self.measure = measure
        self.value: float | None = None
        self._at: float | None = None

    def current(self) -> float | None:
        if self._at is None or time.monotonic() - self._at >= self.every:
            value = self.measure()
            self._at = time.monotonic()
            if value is not None:
                self.value = value
        return self.value


def normal_name(metric: str) -> str:
    base, at, level = metric.partition("@")
    return base + NORM + at + level


def normalise(metrics: Mapping[str, float | int | None], timing: Sequence[str],
              reference: float | None) -> dict[str, float | int | None]:
    """The metrics with each timing metric's normalised value and the reference added (as
    they are when the evaluator took no reference, or the species has no timing metric)."""
    if not reference or not timing:
        return dict(metrics)
    out = dict(metrics)
    out[REFERENCE] = reference
    for name, value in metrics.items():
        if name.split("@", 1)[0] in timing:
            out[normal_name(name)] = None if value is None else float(value) / reference
    return out


def selected(metrics: Mapping[str, object], timing: Sequence[str]) -> dict[str, object]:
    """What selection reads under `evaluation.calibrate`: each timing metric replaced by its
    normalised value (missing where no reference was taken)."""
    return {name: (metrics.get(normal_name(name)) if name.split("@", 1)[0] in timing else value)
            for name, value in metrics.items()}
