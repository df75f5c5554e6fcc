"""What every species provides: a genome type with a canonical form, sampling, variation, evaluation.

A species is a plug-in. The engine (`evolve`) only ever talks to this interface:

- `to_data` / `from_data`: the genome's canonical JSON value; `hash` is blake2b of its JSON text.
- `sample`, `mate`, `mutate`: pure functions of their inputs and an explicit numpy Generator
  (the engine draws it from the run seed); operators never touch global random state.
- `evaluate`: runs on an evaluator actor, turns genomes into `Outcome`s (never raises for a
  misbehaving individual: that is a failed outcome with its reason).
- `directions` / `check_metric`: which metrics exist and which way is better (objectives).
- `consumes` / `context`: a species that learns from what others produced (accordion trains
  on tower trajectories) names them; before each generation the driver hands it the products
  so far and ships what `context` returns with every item of that generation.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np

from populations.objectives import Constraint

if TYPE_CHECKING:
    from populations.reflect import Proposal

G = TypeVar("G")

STATUSES = ("ok", "failed", "timeout", "invalid")


def canonical_json(data: Any) -> str:
    """The one JSON text of a value: sorted keys, no spaces, UTF-8 kept."""
    return _CANONICAL.encode(data)


# json.dumps with options builds an encoder per call; one is enough
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def blake2b_hex(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def py_random(rng: np.random.Generator) -> random.Random:
    """A `random.Random` drawn from a numpy Generator (for DEAP-style operators)."""
    return random.Random(int(rng.integers(0, 2**63)))


@dataclass(eq=False)
class Candidate:
    """One individual as it travels through selection: genome plus identity and ancestry.

    The engine assigns `id` and `seed` when the individual is first asked for; variation
    operators create fresh candidates and never mutate an existing one.
    """

    genome: Any
    hash: str
    parents: tuple[str, ...] = ()
    id: str = ""
    seed: int = 0
    origin: str = "sample"  # sample | crossover | mutation | crossover+mutation
    canonical: str = ""  # the genome's canonical JSON, kept once computed (not pickled)
    # what its children start from once it has learned from its own evaluation
    # (`Species.learn`); None: its genome
    heir: Any = None

    @property
    def parent_genome(self) -> Any:
        """The genome variation reads when this candidate is a parent."""
        return self.genome if self.heir is None else self.heir

    @classmethod
    def of(cls, species: Species[Any], genome: Any, parents: tuple[str, ...] = (),
           origin: str = "sample") -> Candidate:
        """A candidate with its canonical JSON and hash computed once."""
        text = species.canonical_json(genome)
        return cls(genome, blake2b_hex(text), parents, origin=origin, canonical=text)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["canonical"] = ""  # cheap to recompute, costly to checkpoint every generation
        return state


@dataclass(frozen=True)
class EvalItem:
    """What an evaluator actor needs to evaluate one individual."""

    individual_id: str
    genome: Any
    hash: str
    seed: int
    # what `Species.context` made of the products so far (resolved on the actor when the
    # driver shipped it through Ray's object store); None for self-contained species
    context: Any = None
    # nodes that evaluated this individual before: a pool prefers an actor elsewhere
    # (re-evaluation on different nodes where the cluster has several)
    avoid: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeldOut:
    """One evaluation of a genome on part of a held-out split: the context its `EvalItem`
    carries and the tasks it must report (a task it does not report counts as failed)."""

    context: Any
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class Product:
    """What an evaluated individual left under the run directory for other species to use."""

    species: str
    individual_id: str
    generation: int
    path: Path  # a trajectory repository (absolute)


@dataclass
class Outcome:
    """What evaluating one individual returns: a species' `evaluate` makes it, the actor (or
    the pool, for an evaluation it gave up on) fills in where and how often it ran, and it
    travels back through Ray. The driver reads it once into its own record
    (`evolve.evaluated.Evaluated`: the bytes written under the run directory, their paths
    kept) and never changes it."""

    individual_id: str
    status: str  # ok | failed | timeout | invalid
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    error: str | None = None
    wall_seconds: float = 0.0
    node: str = ""  # the Ray node that ran it (set by the actor)
    bundle: bytes | None = None  # the trajectory repository as `git bundle` bytes (tower)
    artifacts: dict[str, bytes] | None = None  # files to keep by name (accordion: "model.pt")
    attempts: int = 1  # set by the pool: 2 when a dead actor's work was resubmitted once
    isolation: str | None = None  # the sandbox isolation a tower ran under (bwrap | process)
    tasks: list[dict[str, Any]] | None = None  # per task of a tower's sample (harness_tower.sample.TaskResult)
    reference: float | None = None  # the evaluator's reference seconds (evolve.calibrate), set by it


class Species(ABC, Generic[G]):
    """A genome type with its sampling, variation, evaluation and metric directions."""

    name: ClassVar[str]
    # How many individuals one actor call evaluates: large for cheap vectorised problems,
    # 1 for towers (one sandbox each, and a timeout per evaluation).
    batch_size: ClassVar[int] = 1
    # metric base name (before '@') -> "min" | "max" | None (no natural direction)
    directions: ClassVar[Mapping[str, str | None]] = {}
    # evaluated by trainer actors (a GPU each when the cluster has GPUs) instead of evaluators
    accelerated: ClassVar[bool] = False
    # species whose products (trajectories) this one's evaluations learn from
    consumes: ClassVar[tuple[str, ...]] = ()
    # evaluation is cheap, pure and self-contained (no sandbox, no subprocess, no timeout to
    # enforce): `evaluation.actors: 0` may then evaluate it in the driver process itself
    in_driver: ClassVar[bool] = False
    # metric base names that measure time, normalised by the evaluator's reference (evolve.calibrate)
    timing: ClassVar[tuple[str, ...]] = ()

    # --- genome form ------------------------------------------------------------------
    @abstractmethod
    def to_data(self, genome: G) -> Any:
        """The genome as a JSON value (canonical: equal genomes give equal values)."""

    @abstractmethod
    def from_data(self, data: Any) -> G:
        """Inverse of `to_data`; raises SpeciesError for data that is not a valid genome."""

    def canonical_json(self, genome: G) -> str:
        return canonical_json(self.to_data(genome))

    def hash(self, genome: G) -> str:
        """Always blake2b of `canonical_json` (species override the JSON, never this)."""
        return blake2b_hex(self.canonical_json(genome))

    # --- variation (pure; explicit RNG) ---------------------------------------------------
    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator) -> list[G]:
        """`n` initial genomes."""

    @abstractmethod
    def mate(self, pairs: Sequence[tuple[G, G]], rng: np.random.Generator) -> list[tuple[G, G]]:
        """Two children per pair of parents (crossover)."""

    @abstractmethod
    def mutate(self, genomes: Sequence[G], rng: np.random.Generator) -> list[G]:
        """One mutant per genome."""

    # --- evaluation (runs on an actor) ----------------------------------------------------
    def reference_timing(self, workdir: Path) -> float | None:
        """The node's time for the species' fixed reference evaluation, in its timing metrics'
        units (`evolve.calibrate` divides them by it); None when it could not be taken. Only
        species with `timing` metrics are asked."""
        return None

    @abstractmethod
    def evaluate(self, items: Sequence[EvalItem], *, workdir: Path, timeout: float,
                 run_id: str) -> list[Outcome]:
        """One outcome per item, in order. Never raises for a misbehaving individual."""

    def use_experts(self, experts: Mapping[str, Any] | None) -> None:
        """The run config's `experts:` section (where expert backends' model calls go), given
        once when the run is resolved; None when the config has none. Species without model
        calls ignore it."""

    def use_seed(self, seed: int) -> None:
        """The run's seed, for what a species draws per generation (a tower's tasks)."""

    def context(self, generation: int, products: Sequence[Product]) -> Any:
        """What every evaluation of `generation` needs besides its genome (runs on the driver,
        given the products of the species in `consumes` from earlier generations)."""
        return None

    def learn(self, genome: G, tasks: Sequence[Mapping[str, Any]]) -> G | None:
        """Learning inside a run: the genome this one's children should start from, given its
        per-task results (`Outcome.tasks`), or None to leave it as it is (the default)."""
        return None

    def take_proposals(self) -> list[Proposal]:
        """The reflective-mutation proposals made since the last call (`populations.reflect`),
        for the engine to store; [] for a species that does not reflect (the default)."""
        return []

    def take_variation(self) -> dict[str, int]:
        """Counts of what variation did since the last call (e.g. graph children made and
        refused by their type check), stored with the generation; {} by default."""
        return {}

    def verify(self) -> None:
        """What must hold before a run starts and cannot be seen in the config alone (a
        tower's suite: every reference solution passes its own check in a real terminal);
        raises SpeciesError with one line. Nothing by default."""

    def held_out(self, split: str) -> list[HeldOut]:
        """The evaluations that together evaluate a genome on the whole held-out `split`
        (`validation`, `test`), their task results summed; [] for a species without held-out
        data (the default)."""
        return []

    # --- a cheap stage (evaluation.cascade) ------------------------------------------------
    def check_stage(self, tasks: int | None, depth: int | None) -> str | None:
        """None when this species can make a stage cheaper than its full evaluation with
        `tasks` tasks and depth `depth` (None: as the full one), else `field: why` (one line).
        A species without a cheaper stage refuses every setting (the default)."""
        return f"tasks: species {self.name} has no cheaper stage to gate its evaluation with"

    def stage(self, context: Any, tasks: int | None, depth: int | None) -> Any:
        """The context of the cheap stage, made from the full evaluation's (`check_stage` said yes)."""
        raise NotImplementedError(f"species {self.name} has no cheaper stage")

    def metric_range(self, metric: str) -> tuple[float, float]:
        """The values `metric` can take (a gate's threshold must lie inside); unbounded by default."""
        return (-math.inf, math.inf)

    # --- metrics ------------------------------------------------------------------------
    def direction(self, metric: str) -> str | None:
        return self.directions.get(metric.split("@", 1)[0])

    def check_metric(self, metric: str) -> str | None:
        """None when `metric` is something this species reports, else why not (one line)."""
        base = metric.split("@", 1)[0]
        if base not in self.directions:
            return f"unknown metric {metric!r} for species {self.name} (known: {', '.join(sorted(self.directions))})"
        return None

    def default_objectives(self) -> list[str]:
        return []

    def default_constraints(self) -> list[Constraint]:
        return []

    def describe(self, genome: G) -> str:
        """A short one-line summary for tables."""
        return self.hash(genome)[:12]
