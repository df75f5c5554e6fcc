"""From an evaluation's metrics to pymoo's minimisation form: objectives F and constraints G.

Objectives are minimised, so a `max` metric is negated. Constraints follow pymoo: G <= 0 is
feasible. The first G column is the engine's own: 0 for a usable evaluation, `FAILED_G`
for one that failed, timed out, was invalid or lacks a finite objective — such an
individual is infeasible and is dominated by every feasible one.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

FAILED_G = 1.0e6


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "min" | "max"
    ref: float | None = None  # hypervolume reference, in the metric's own units

    @property
    def sign(self) -> float:
        return -1.0 if self.direction == "max" else 1.0


@dataclass(frozen=True)
class Constraint:
    """`le`: metric <= le; `ge`: metric >= ge; `eq`: metric == eq (any combination)."""

    metric: str
    le: float | None = None
    ge: float | None = None
    eq: float | None = None

    def violation(self, value: float) -> float:
        """The pymoo G value (<= 0 feasible); several bounds add up."""
        g = 0.0
        if self.le is not None:
            g += max(0.0, value - self.le)
        if self.ge is not None:
            g += max(0.0, self.ge - value)
        if self.eq is not None:
            g += abs(value - self.eq)
        return g


@dataclass(frozen=True)
class Scored:
    F: np.ndarray  # (n_obj,) minimisation form
    G: np.ndarray  # (1 + n_constr,)
    values: list[float | None]  # objectives in natural units (None when missing)
    note: str | None  # why the individual is infeasible, when it is

    @cached_property  # read for the observer and for the stored row; a numpy reduction each time
    def CV(self) -> float:
        return float(np.maximum(self.G, 0.0).sum())


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def score(status: str, metrics: Mapping[str, object], objectives: Sequence[Objective],
          constraints: Sequence[Constraint]) -> Scored:
    """F, G and a reason for one evaluation."""
    notes: list[str] = []
    if status != "ok":
        notes.append(f"evaluation {status}")
    values: list[float | None] = []
    F = np.empty(len(objectives))
    for k, obj in enumerate(objectives):
        v = _number(metrics.get(obj.metric))
        values.append(v)
        if v is None or not math.isfinite(v):
            F[k] = math.inf
            if status == "ok":
                notes.append(f"objective {obj.metric} is {'missing' if v is None else v}")
        else:
            F[k] = obj.sign * v
    G = np.zeros(1 + len(constraints))
    for k, con in enumerate(constraints, start=1):
        v = _number(metrics.get(con.metric))
        if v is None or not math.isfinite(v):
            G[k] = FAILED_G
            if status == "ok":
                notes.append(f"constraint {con.metric} is {'missing' if v is None else v}")
        else:
            G[k] = con.violation(v)
            if G[k] > 0:
                notes.append(f"constraint {con.metric} violated by {G[k]:g}")
    usable = status == "ok" and bool(np.all(np.isfinite(F)))
    G[0] = 0.0 if usable else FAILED_G
    return Scored(F=F, G=G, values=values, note="; ".join(notes) or None)
