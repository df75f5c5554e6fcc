"""Budgets: what a run has spent, against the limits of its config's `budget:` section.

Spend is counted by the engine after every generation and committed with it (table
`spend`, one row per generation: the run's totals so far, the limits then in force and,
where one was reached, which). The run stops between generations once a limit is reached
— everything committed, a checkpoint taken — and `evolve run --resume` with a raised
budget goes on from there (`evolve.runs.MAY_CHANGE`). A generation is never cut short, so
a run overshoots a limit by at most one generation's spend (measured in
benchmarks/RESULTS.md).

What counts: `evaluations` are the evaluations run (offspring whose genome the run had not
evaluated with the same context, and re-evaluations of front members; validation on the
held-out split is not search and is not counted); `wall_seconds` the engine's time over
every session (generation by generation: ask to commit); `expert_tokens.<endpoint>`
prompt plus completion tokens each expert endpoint reported, in evaluations
(`expert_tokens_<endpoint>` metrics) and in reflective mutation (`proposals.tokens`).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evolve.config import ENDPOINTS

if TYPE_CHECKING:
    from evolve.store import SpendRow


@dataclass
class Spend:
    """A run's spend so far (every session)."""

    evaluations: int = 0
    wall_seconds: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)  # by expert endpoint

    def add(self, *, evaluations: int, wall_seconds: float, tokens: Mapping[str, int]) -> None:
        self.evaluations += evaluations
        self.wall_seconds += wall_seconds
        for endpoint, n in tokens.items():
            if n:
                self.tokens[endpoint] = self.tokens.get(endpoint, 0) + n

    def figures(self) -> dict[str, float]:
        """Every figure by the name of its limit (`BudgetConfig.limits`)."""
        return {"evaluations": self.evaluations, "wall_seconds": self.wall_seconds,
                **{f"expert_tokens.{e}": self.tokens.get(e, 0) for e in ENDPOINTS}}


def metric_tokens(metrics: Mapping[str, object]) -> dict[str, int]:
    """Tokens per endpoint an evaluation's metrics report (`expert_tokens_<endpoint>`)."""
    out = {}
    for endpoint in ENDPOINTS:
        value = metrics.get(f"expert_tokens_{endpoint}")
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            out[endpoint] = int(value)
    return out


def sum_tokens(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for endpoint, n in part.items():
            out[endpoint] = out.get(endpoint, 0) + n
    return out


def reached(limits: Mapping[str, float], spend: Mapping[str, float]) -> str | None:
    """The first limit the spend has reached, said as `evaluations 36 of 30`; None when none."""
    for name, limit in limits.items():
        if spend.get(name, 0) >= limit:
            return f"{name} {_amount(name, spend.get(name, 0))} of {_amount(name, limit)}"
    return None


def spend_line(spend: Mapping[str, float], limits: Mapping[str, float]) -> str:
    """One line for `evolve status`: each figure spent, with its limit where one is set (a
    token figure only where tokens were spent or limited)."""
    parts = []
    for name, value in spend.items():
        if name.startswith("expert_tokens.") and not value and name not in limits:
            continue
        limit = limits.get(name)
        parts.append(f"{name} {_amount(name, value)}" + (f" of {_amount(name, limit)}" if limit is not None else ""))
    return ", ".join(parts)


def _amount(name: str, value: float) -> str:
    return f"{value:.1f}s" if name == "wall_seconds" else str(int(value))


def live_spend(live: Mapping[str, object]) -> str:
    """The spend line of a driver's status snapshot (`status.json`: `spend` and `budget`)."""
    spend, limits = live.get("spend"), live.get("budget")
    if not isinstance(spend, Mapping):
        return "-"  # a driver from before budgets
    return spend_line(spend, limits if isinstance(limits, Mapping) else {})


def stored_spend(row: SpendRow | None) -> tuple[str, str | None]:
    """The spend line of a store's last `spend` row, and the limit that stopped the run there."""
    if row is None:
        return "-", None
    spend = Spend(row.evaluations, row.wall_seconds, dict(json.loads(row.expert_tokens)))
    return spend_line(spend.figures(), json.loads(row.budget)), row.stopped_by
