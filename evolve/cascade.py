"""Cascades (`evaluation.cascade`): a cheap stage gates the full evaluation.

Each new individual of a species with a cascade is first evaluated on the species' cheap
stage (`Species.stage`: a tower's first k tasks of the generation's draw and/or a shallower
tower, no trajectory sent back). Those whose stage metric meets the threshold are then
evaluated fully, as without a cascade; the others are not: their record is the stage's
metrics with status `failed` and an error that starts `gated:` (the store's statuses are
ok | failed | timeout | invalid), which `populations.objectives.score` makes infeasible (so a
gated individual never beats one evaluated fully, and a stage's metrics, measured on fewer
tasks or a lower tower, are never compared with full ones). Every stage that ran is a row
of `stages`; the generation stores how many were gated, the stages' seconds and the full
evaluation seconds saved, estimated as gated × the mean seconds of the generation's full
evaluations (of earlier generations' when none ran; unknown, NULL, before any has run).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from evolve.config import CascadeConfig

GATED = "failed"  # the status of an individual the cheap stage kept from the full evaluation (error: gated: …)
STAGE_SUFFIX = ".s0"  # the cheap stage's item id: the individual's, so suffixed


def passes(cascade: CascadeConfig, status: str, metrics: Mapping[str, object]) -> tuple[bool, str]:
    """Whether a cheap stage's result lets the individual on to the full evaluation; why not."""
    if status != "ok":
        return False, f"gated: the cheap stage {status}"
    value = metrics.get(cascade.metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False, f"gated: the cheap stage gave no {cascade.metric}"
    if cascade.min is not None and value < cascade.min:
        return False, f"gated: {cascade.metric} {value:g} < {cascade.min:g} at the cheap stage"
    if cascade.max is not None and value > cascade.max:
        return False, f"gated: {cascade.metric} {value:g} > {cascade.max:g} at the cheap stage"
    return True, ""


@dataclass
class Saving:
    """A lane's running mean of full evaluation seconds, for the estimate of what gating saved."""

    seconds: float = 0.0
    count: int = 0

    def saved(self, gated: int, full: list[float]) -> float | None:
        """Seconds the `gated` individuals would have taken fully: the mean of this
        generation's `full` evaluations (added to the running mean), else the running mean;
        None (unknown) when none has run yet and some were gated."""
        self.seconds += math.fsum(full)
        self.count += len(full)
        if not gated:
            return 0.0
        if full:
            return gated * math.fsum(full) / len(full)
        return gated * self.seconds / self.count if self.count else None


def progress_text(gated: int, stage_seconds: float, gate_saved: float | None) -> str:
    """`cascade: 3 gated, 41.2s saved, stage 9.8s` for a progress line; empty without a stage."""
    if not stage_seconds and not gated:
        return ""
    saved = "? s (no full evaluation yet to estimate from)" if gate_saved is None else f"{gate_saved:.1f}s"
    return f"cascade: {gated} gated, {saved} saved, stage {stage_seconds:.1f}s"
