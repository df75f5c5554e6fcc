"""The seam between the engine and whatever evaluates a species: the `Pool` protocol.

A pool takes a species' items with `submit`, hands back outcomes as they finish with
`poll` (never blocking), and says what it is `waiting_on` meanwhile (Ray object refs), so
that one `ray.wait` covers every pool of a run and a fast species never waits for a slow
one (`evaluate_together`). Two kinds exist: `evolve.actors.EvaluatorPool` (Ray actors, with
retries, deadlines and replacements) and `DriverPool` below (the driver itself, for cheap,
pure species).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from evolve.calibrate import Clock
from evolve.config import AnySpecies
from evolve.errors import EvolveError
from populations.base import EvalItem, Outcome

if TYPE_CHECKING:
    from ray import ObjectRef

POLL_SECONDS = 1.0  # how often pools look at their deadlines while nothing completes
START_TIMEOUT = 180.0  # seconds an actor may take to start (worker process + imports)

# What an actor reported when it started: node, pid, sandbox root, resources (JSON values).
Placement = dict[str, object]
# A Ray object ref of any result: ObjectRef is invariant in its result type, and ray.wait
# never reads the results.
Waitable: TypeAlias = "ObjectRef[Any]"


class Pool(Protocol):
    """Evaluates the items of one species; see the module's docstring."""

    role: str  # "evaluator" | "trainer" | "driver": names the pool's workers in events and errors
    actor_options: Mapping[str, float]  # Ray resources of one actor ({} in the driver)
    placements: list[Placement]

    @property
    def size(self) -> int:
        """How many actors (0: the driver evaluates)."""
        ...

    def wait_ready(self, timeout: float = START_TIMEOUT) -> list[Placement]:
        """Block until every actor has started; raises EvolveError naming what did not."""
        ...

    def submit(self, items: Sequence[EvalItem]) -> None:
        """Queue `items`; work starts at once where a worker is free."""
        ...

    def poll(self) -> list[Outcome]:
        """The outcomes finished since the last poll (one per submitted item, eventually),
        without blocking; keeps the workers busy, alive and on time meanwhile."""
        ...

    def idle(self) -> bool:
        """Whether every submitted item has had its outcome."""
        ...

    def waiting_on(self) -> list[Waitable]:
        """What to wait on until `poll` has something new (empty when it never waits)."""
        ...

    def close(self, timeout: float = 10.0) -> None: ...

    def evaluate(self, items: Sequence[EvalItem]) -> Iterator[Outcome]:
        """Outcomes of `items` as they finish (this pool alone)."""
        for _, outcome in evaluate_together([(self, items)]):
            yield outcome


def evaluate_together(work: Sequence[tuple[Pool, Sequence[EvalItem]]]) -> Iterator[tuple[Pool, Outcome]]:
    """Keep every pool busy with its own items at once; (pool, outcome) as each finishes.

    Actors get their work on `submit`, so a `DriverPool` evaluates (on its first `poll`)
    while they are busy with it.
    """
    merged: dict[int, tuple[Pool, list[EvalItem]]] = {}  # a pool listed twice (a species' islands) works once
    for pool, items in work:
        merged.setdefault(id(pool), (pool, []))[1].extend(items)
    for pool, items in merged.values():
        pool.submit(items)
    pools = [pool for pool, _ in merged.values()]
    while not all(pool.idle() for pool in pools):
        waits = [pool.waiting_on() for pool in pools]
        # Wait only when every busy pool is waiting on Ray: a pool with nothing to wait on
        # (the driver's) has work to do now.
        if all(w or pool.idle() for w, pool in zip(waits, pools)):
            import ray

            ray.wait([ref for w in waits for ref in w], num_returns=1, timeout=POLL_SECONDS)
        for pool in pools:
            for outcome in pool.poll():
                yield pool, outcome


class DriverPool(Pool):
    """`evaluation.actors: 0`: the species is evaluated in the driver process itself.

    Only for species that declare cheap, pure, self-contained evaluation (`Species.in_driver`,
    e.g. `numeric`, microseconds of numpy per individual): a Ray round trip per batch would
    cost a thousand times the evaluation. There is no actor to die or to kill, so no retry and
    no timeout is enforced; a species error becomes a failed outcome with its reason, as on
    an actor. Everything else — the store, the checkpoints, resume — is the same.
    """

    role = "driver"
    size = 0

    def __init__(self, species: AnySpecies, *, run_id: str, timeout: float,
                 calibrate_every: float | None = None) -> None:
        if not species.in_driver:
            raise EvolveError(f"species {species.name} cannot be evaluated in the driver (evaluation.actors: 0)")
        self.species = species
        self.run_id = run_id
        self.timeout = timeout
        self.actor_options: Mapping[str, float] = {}
        self.placements: list[Placement] = []
        self.node = ""
        self._root: Path | None = None
        self._items: list[EvalItem] = []
        # taken on the first evaluation and again now and then, under evaluation.calibrate
        self.clock = (Clock(calibrate_every, self._reference)
                      if species.timing and calibrate_every is not None else None)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> list[Placement]:
        import ray

        if ray.is_initialized():
            self.node = ray.get_runtime_context().get_node_id()
        self.placements = [{"node": self.node or "driver", "pid": os.getpid()}]
        return self.placements

    def submit(self, items: Sequence[EvalItem]) -> None:
        self._items.extend(items)

    def poll(self) -> list[Outcome]:
        items, self._items = self._items, []
        if not items:
            return []
        reference = self.clock.current() if self.clock is not None else None  # the load before the work
        start = time.perf_counter()
        try:
            outcomes = self.species.evaluate(items, workdir=self._workdir(), timeout=self.timeout, run_id=self.run_id)
        except Exception as exc:  # noqa: BLE001 - as on an actor: a crash in the species is a failed result
            wall = (time.perf_counter() - start) / len(items)
            outcomes = [Outcome(it.individual_id, "failed", error=f"{type(exc).__name__}: {exc}",
                                wall_seconds=wall) for it in items]
        node = self.node or "driver"
        for o in outcomes:
            o.node = node
            o.reference = reference
        return outcomes

    def _reference(self) -> float | None:
        return self.species.reference_timing(self._workdir())

    def _workdir(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix=f"evolve-driver-{os.getpid()}-"))
        return self._root

    def idle(self) -> bool:
        return not self._items

    def waiting_on(self) -> list[Waitable]:
        return []

    def close(self, timeout: float = 10.0) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
