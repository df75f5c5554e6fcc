"""What one generation says about the search, beyond its hypervolume: each objective's
minimum, mean and maximum over the generation's evaluations, how many distinct points its
front has, and why its evaluations failed (counts by reason).

The engine stores these in the `generations` row and prints them as the run goes; the
report groups evaluations by the same `failure_reason`.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TypedDict

import numpy as np

REASON_CHARS = 60  # a reason is a short key to count by, not the whole message


class ObjectiveStats(TypedDict):
    metric: str
    n: int  # evaluations that gave this objective a finite value
    min: float | None
    mean: float | None
    max: float | None


_PARENS = re.compile(r"\s*\([^()]*\)")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\d+(\.\d+)?(e[+-]?\d+)?")


def failure_reason(status: str, error: str | None) -> str:
    """A short key that groups failures of one kind: the status, then the first clause of
    the error's first line (of a Python traceback, its last line) with numbers, quoted text
    and parentheses taken out (a timeout after 30.2 s and one after 31 s are one reason)."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    head = lines[0] if lines else ""
    if "Traceback (most recent call last)" in head:  # a Python traceback: its last line names the error
        head = head[:head.index("Traceback")] + lines[-1]
    head = head.split("; ")[0]
    head = _NUMBER.sub("N", _QUOTED.sub("…", _PARENS.sub("", head))).strip()
    if len(head) > REASON_CHARS:
        head = head[:REASON_CHARS - 1].rstrip() + "…"
    return f"{status}: {head}" if head else status


def failures(outcomes: Iterable[tuple[str, str | None]]) -> dict[str, int]:
    """(status, error) of each evaluation -> {reason: count} of those that did not finish ok,
    most frequent first."""
    counts = Counter(failure_reason(s, e) for s, e in outcomes if s != "ok")
    return dict(counts.most_common())


def objective_stats(metrics: Sequence[str], values: Iterable[Sequence[float | None]]) -> list[ObjectiveStats]:
    """Per objective (natural units), over the finite values the evaluations gave it."""
    columns: list[list[float]] = [[] for _ in metrics]
    for row in values:
        for k, v in enumerate(row[:len(metrics)]):
            if v is not None and math.isfinite(v):
                columns[k].append(float(v))
    return [ObjectiveStats(metric=m, n=len(col), min=min(col) if col else None,
                           mean=math.fsum(col) / len(col) if col else None, max=max(col) if col else None)
            for m, col in zip(metrics, columns)]


def distinct_points(F: np.ndarray) -> int:
    """Distinct objective vectors among the rows of F (a front's members may share one)."""
    return 0 if len(F) == 0 else int(len(np.unique(np.asarray(F, dtype=float), axis=0)))


def encode(value: object) -> str:
    """The JSON stored in `generations` (strict: no NaN or Infinity)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def progress_text(objective_stats_json: str, failures_json: str) -> str:
    """`f1 0.1/0.45/0.9 (min/mean/max); failed: timeout 2, …` for a progress line, from
    the stored JSON; empty when there is nothing to say."""
    parts = []
    stats: list[ObjectiveStats] = json.loads(objective_stats_json or "[]")
    shown = [f"{s['metric']} {_num(s['min'])}/{_num(s['mean'])}/{_num(s['max'])}" for s in stats if s["n"]]
    if shown:
        parts.append(", ".join(shown) + " (min/mean/max)")
    why: dict[str, int] = json.loads(failures_json or "{}")
    if why:
        top = list(why.items())[:3]
        more = f", +{len(why) - 3} more reason(s)" if len(why) > 3 else ""
        parts.append("failed: " + ", ".join(f"{r} ×{n}" for r, n in top) + more)
    return "; ".join(parts)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"
