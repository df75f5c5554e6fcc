"""Tower genome mutations: pure functions `(genome, rng, ...) -> genome` (DEAP style).

Each returns a new `TowerGenome` that passes the genome's own validation (so it can be
rendered); an operator that has nothing to change returns the genome unchanged. What the
tower must do is not in the genome at all: its tasks come from the run's task suite.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence

from harness_tower.genome import (
    CONTENT_SOURCES,
    TYPING_MODES,
    ExperienceEntry,
    TowerGenome,
)

# tables that must keep at least one entry for the genome to stay valid
REQUIRED_TABLES = ("decision", "command")
MAX_ENTRIES = 32  # per table: bounds how large experience (and code_bytes) can grow
MAX_WEIGHT = 10.0


def distinct(entries: Sequence[ExperienceEntry]) -> list[ExperienceEntry]:
    """The entries with one of each (query, value): the first kept. A copy adds nothing a row
    does not already answer, but it takes a place of the table's MAX_ENTRIES and doubles the
    row's vote; crossover and insertion would otherwise pile copies up generation by generation."""
    seen: set[tuple[str, str]] = set()
    out = []
    for e in entries:
        if (e.query, e.value) not in seen:
            seen.add((e.query, e.value))
            out.append(e)
    return out


def _with_table(genome: TowerGenome, table: str, entries: Sequence[ExperienceEntry]) -> TowerGenome:
    experience = dict(genome.experience)
    experience[table] = tuple(distinct(entries))
    return genome.replace(experience=experience)


def perturb_weights(genome: TowerGenome, rng: random.Random, *, sigma: float = 0.3,
                    indpb: float = 0.3) -> TowerGenome:
    """Scale each entry's weight by exp(N(0, sigma)) with probability `indpb`."""
    experience = {}
    for table, entries in genome.experience.items():
        new = []
        for e in entries:
            if rng.random() < indpb:
                w = min(MAX_WEIGHT, max(0.0, e.weight * math.exp(rng.gauss(0.0, sigma))))
                e = ExperienceEntry(e.query, e.key, e.value, round(w, 6))
            new.append(e)
        experience[table] = tuple(new)
    return genome.replace(experience=experience)


def replace_entry(genome: TowerGenome, rng: random.Random,
                  library: Sequence[tuple[str, ExperienceEntry]] = ()) -> TowerGenome:
    """Replace one entry by a donor from `library` (same table) or a sibling of its table."""
    tables = [t for t, entries in genome.experience.items() if entries]
    if not tables:
        return genome
    table = rng.choice(sorted(tables))
    entries = list(genome.experience[table])
    donors = [e for t, e in library if t == table] or entries
    k = rng.randrange(len(entries))
    entries[k] = rng.choice(donors)
    return _with_table(genome, table, entries)


def insert_entry(genome: TowerGenome, rng: random.Random,
                 library: Sequence[tuple[str, ExperienceEntry]] = ()) -> TowerGenome:
    """Insert a donor entry (library or the genome's own) at a random place in its table."""
    pool = list(library) or [(t, e) for t, entries in sorted(genome.experience.items()) for e in entries]
    if not pool:
        return genome
    table, entry = rng.choice(pool)
    entries = list(genome.experience.get(table, ()))
    if len(entries) >= MAX_ENTRIES or any((e.query, e.value) == (entry.query, entry.value) for e in entries):
        return genome
    entries.insert(rng.randrange(len(entries) + 1), entry)
    return _with_table(genome, table, entries)


def delete_entry(genome: TowerGenome, rng: random.Random) -> TowerGenome:
    """Delete one entry, never emptying a required table."""
    tables = [t for t, entries in sorted(genome.experience.items())
              if len(entries) > (1 if t in REQUIRED_TABLES else 0)]
    if not tables:
        return genome
    table = rng.choice(tables)
    entries = list(genome.experience[table])
    del entries[rng.randrange(len(entries))]
    if not entries and table not in REQUIRED_TABLES:
        experience = {t: e for t, e in genome.experience.items() if t != table}
        return genome.replace(experience=experience)
    return _with_table(genome, table, entries)


def flip_typing_mode(genome: TowerGenome, rng: random.Random,
                     choices: Sequence[str] = TYPING_MODES) -> TowerGenome:
    others = [m for m in choices if m != genome.typing_mode]
    return genome.replace(typing_mode=rng.choice(others)) if others else genome


def flip_content_source(genome: TowerGenome, rng: random.Random,
                        choices: Sequence[str] = CONTENT_SOURCES) -> TowerGenome:
    others = [c for c in choices if c != genome.content_source]
    return genome.replace(content_source=rng.choice(others)) if others else genome


def change_chunk(genome: TowerGenome, rng: random.Random, *, low: int = 1, high: int = 16) -> TowerGenome:
    """Halve, double, or step the characters-per-send by one, within [low, high]."""
    c = genome.chunk
    new = rng.choice([max(low, c // 2), min(high, c * 2), c - 1, c + 1])
    return genome.replace(chunk=min(high, max(low, new)))


def change_topk(genome: TowerGenome, rng: random.Random, *, low: int = 1, high: int = 8) -> TowerGenome:
    return genome.replace(topk=min(high, max(low, genome.topk + rng.choice((-1, 1)))))


def change_max_iterations(genome: TowerGenome, rng: random.Random, *, low: int = 1,
                          high: int = 50) -> TowerGenome:
    return genome.replace(max_iterations=min(high, max(low, genome.max_iterations + rng.choice((-2, -1, 1, 2)))))
