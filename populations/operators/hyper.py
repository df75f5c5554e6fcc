"""Hyper-parameter genes: sampling, crossover and mutation over a declared space (DEAP style).

A genome here is a mapping gene name -> value; a `Space` says what each gene may be. The
operators are pure functions with an explicit `random.Random` and return new mappings;
whoever owns the genome type repairs cross-gene rules (e.g. heads dividing the width).

| kind | value | mutation |
|---|---|---|
| `int` | integer in [low, high] | a step of ±1..±span/4 |
| `logint` | integer in [low, high] (low >= 1) | scaled by exp(N(0, sigma)), at least ±1 |
| `float` | number in [low, high] | plus N(0, sigma * (high - low)) |
| `logfloat` | number in [low, high] (low > 0) | scaled by exp(N(0, sigma)) |
| `choice` | one of `choices` | another choice (a neighbour when they are ordered numbers) |
| `bool` | true / false | flipped |
| `cycle` | ordered distinct subset of `choices` | two swapped, one dropped or one added |
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("int", "logint", "float", "logfloat", "choice", "bool", "cycle")
Genes = dict[str, Any]


@dataclass(frozen=True)
class Gene:
    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"gene kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind in ("int", "logint", "float", "logfloat") and not self.low <= self.high:
            raise ValueError(f"gene bounds must satisfy low <= high, got [{self.low}, {self.high}]")
        if self.kind in ("logint", "logfloat") and self.low <= 0:
            raise ValueError(f"a log-scaled gene needs low > 0, got {self.low}")
        if self.kind in ("choice", "cycle") and not self.choices:
            raise ValueError("a choice gene needs at least one choice")

    def contains(self, value: Any) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "cycle":
            return (isinstance(value, (list, tuple)) and len(value) >= 1 and len(set(value)) == len(value)
                    and all(v in self.choices for v in value))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind in ("int", "logint") and int(value) != value:
            return False
        return self.low <= value <= self.high

    def clip(self, value: Any) -> Any:
        """The nearest value of this gene (for repairs and narrowed spaces)."""
        if self.contains(value):
            return value
        if self.kind == "bool":
            return bool(value)
        if self.kind == "choice":
            if all(_is_number(c) for c in self.choices) and _is_number(value):
                return min(self.choices, key=lambda c: (abs(c - value), c))
            return self.choices[0]
        if self.kind == "cycle":
            kept = [v for v in (value if isinstance(value, (list, tuple)) else ()) if v in self.choices]
            return tuple(dict.fromkeys(kept)) or (self.choices[0],)
        v = min(self.high, max(self.low, float(value)))
        return round(v) if self.kind in ("int", "logint") else round_sig(v)


Space = Mapping[str, Gene]


def round_sig(x: float, digits: int = 4) -> float:
    """`x` to `digits` significant digits, so a genome's JSON stays short and canonical."""
    return float(f"{x:.{digits}g}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def sample_gene(gene: Gene, rng: random.Random) -> Any:
    k = gene.kind
    if k == "int":
        return rng.randint(int(gene.low), int(gene.high))
    if k == "logint":
        return round(math.exp(rng.uniform(math.log(gene.low), math.log(gene.high))))
    if k == "float":
        return round_sig(rng.uniform(gene.low, gene.high))
    if k == "logfloat":
        return round_sig(math.exp(rng.uniform(math.log(gene.low), math.log(gene.high))))
    if k == "bool":
        return rng.random() < 0.5
    if k == "choice":
        return rng.choice(gene.choices)
    order = list(gene.choices)  # cycle: a random order of a random non-empty subset
    rng.shuffle(order)
    return tuple(order[:rng.randint(1, len(order))])


def sample(space: Space, rng: random.Random) -> Genes:
    """One value per gene, in the space's order."""
    return {name: sample_gene(gene, rng) for name, gene in space.items()}


def mutate_gene(gene: Gene, value: Any, rng: random.Random, *, sigma: float = 0.3) -> Any:
    k = gene.kind
    if k == "int":
        step = max(1, int((gene.high - gene.low) // 4))
        return gene.clip(value + rng.choice((-1, 1)) * rng.randint(1, step))
    if k == "logint":
        new = round(value * math.exp(rng.gauss(0.0, sigma)))
        if new == value:
            new = value + rng.choice((-1, 1))
        return gene.clip(new)
    if k == "float":
        return gene.clip(value + rng.gauss(0.0, sigma * (gene.high - gene.low)))
    if k == "logfloat":
        return gene.clip(value * math.exp(rng.gauss(0.0, sigma)))
    if k == "bool":
        return not value
    if k == "choice":
        others = [c for c in gene.choices if c != value]
        if not others:
            return value
        if all(_is_number(c) for c in gene.choices) and value in gene.choices:
            ordered = sorted(gene.choices)
            i = ordered.index(value)
            near = [ordered[j] for j in (i - 1, i + 1) if 0 <= j < len(ordered)]
            return rng.choice(near)
        return rng.choice(others)
    cycle = list(value)  # cycle
    missing = [c for c in gene.choices if c not in cycle]
    moves = ["swap"] * (len(cycle) >= 2) + ["drop"] * (len(cycle) >= 2) + ["add"] * bool(missing)
    if not moves:
        return tuple(cycle)
    move = rng.choice(moves)
    if move == "swap":
        i, j = rng.sample(range(len(cycle)), 2)
        cycle[i], cycle[j] = cycle[j], cycle[i]
    elif move == "drop":
        del cycle[rng.randrange(len(cycle))]
    else:
        cycle.insert(rng.randint(0, len(cycle)), rng.choice(missing))
    return tuple(cycle)


def mut_genes(genes: Mapping[str, Any], rng: random.Random, *, space: Space, indpb: float,
              sigma: float = 0.3) -> Genes:
    """Mutate each gene of `space` with probability `indpb` (at least one gene changes when
    any can)."""
    out = dict(genes)
    names = [n for n in space if n in out]
    picked = [n for n in names if rng.random() < indpb] or ([rng.choice(names)] if names else [])
    for name in picked:
        out[name] = mutate_gene(space[name], out[name], rng, sigma=sigma)
    return out


def cx_uniform(a: Mapping[str, Any], b: Mapping[str, Any], rng: random.Random, *, space: Space,
               indpb: float = 0.5) -> tuple[Genes, Genes]:
    """Uniform crossover: each gene of `space` swapped between the parents with prob `indpb`."""
    ca, cb = dict(a), dict(b)
    for name in space:
        if name in ca and name in cb and rng.random() < indpb:
            ca[name], cb[name] = cb[name], ca[name]
    return ca, cb
