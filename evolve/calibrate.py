"""Timing calibrated per node (`evaluation.calibrate`).

Timing objectives (`avg_interval`: seconds between a tower's key sends) depend on the node
and its load as much as on the genome. Each evaluator (an actor, or the driver with
`evaluation.actors: 0`) times a fixed reference when it starts: a fixed CPU loop (blake2b
over a fixed buffer and a pure-Python loop, the best of three runs, 0.1-0.3 s), not a
reference tower — a tower's time is mostly process starts, tmux and git, which a reference
tower would measure better but at several seconds per actor. It is a proxy for the node's
speed and load at start, taken once (not again while the actor lives).

Every outcome carries its evaluator's reference seconds; the driver stores, next to each
raw timing metric `m@level`, `m_norm@level` = raw / reference, and `reference_seconds`.
With `evaluation.calibrate: true` selection (objectives and constraints) reads the
normalised value wherever the config names a timing metric.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence

NORM = "_norm"  # the normalised metric's base name: avg_interval@h2 -> avg_interval_norm@h2
REFERENCE = "reference_seconds"
_BUFFER = bytes(range(256)) * 4096  # 1 MiB, the same on every node


def _once() -> None:
    digest = b""
    for _ in range(16):
        digest = hashlib.blake2b(_BUFFER + digest).digest()
    total = 0
    for k in range(200_000):
        total += k * k % 7


def reference_seconds() -> float:
    """The node's time for the fixed reference loop: the best of three runs."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        _once()
        best = min(best, time.perf_counter() - start)
    return best


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
