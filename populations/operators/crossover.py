"""Tower genome crossovers: pure functions `(a, b, rng, ...) -> (child1, child2)` (DEAP style).

Children are built field by field from their parents, so they pass the genome's own
validation whenever the parents do; required experience tables never end up empty.
"""
from __future__ import annotations

import random

from harness_tower.genome import TowerGenome
from populations.operators.mutation import MAX_ENTRIES, REQUIRED_TABLES, distinct

# scalar genes swapped by the uniform crossover (the task is never varied)
FIELDS = ("topk", "max_iterations", "typing_mode", "content_source", "chunk", "settle_timeout", "child_timeout")


def cx_fields(a: TowerGenome, b: TowerGenome, rng: random.Random, *,
              indpb: float = 0.5) -> tuple[TowerGenome, TowerGenome]:
    """Uniform crossover of the scalar genes: each swapped with probability `indpb`."""
    ca: dict[str, object] = {}
    cb: dict[str, object] = {}
    for name in FIELDS:
        if rng.random() < indpb:
            ca[name], cb[name] = getattr(b, name), getattr(a, name)
    return (a.replace(**ca) if ca else a), (b.replace(**cb) if cb else b)


def cx_experience(a: TowerGenome, b: TowerGenome, rng: random.Random) -> tuple[TowerGenome, TowerGenome]:
    """One-point crossover of each experience table's entry list (tails swapped; a row both
    parts hold is kept once)."""
    ea, eb = dict(a.experience), dict(b.experience)
    for table in sorted(set(ea) | set(eb)):
        xa, xb = list(ea.get(table, ())), list(eb.get(table, ()))
        i, j = rng.randint(0, len(xa)), rng.randint(0, len(xb))
        ya, yb = distinct(xa[:i] + xb[j:]), distinct(xb[:j] + xa[i:])
        for rows in (ya, yb):
            if table in REQUIRED_TABLES and not rows:
                rows.extend((xa or xb)[:1])
            del rows[MAX_ENTRIES:]
        for target, rows in ((ea, ya), (eb, yb)):
            if rows:
                target[table] = tuple(rows)
            else:
                target.pop(table, None)
    return a.replace(experience=ea), b.replace(experience=eb)
