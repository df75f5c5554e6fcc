"""Evaluator actors on Ray and the pool that keeps them busy, alive and on time.

Each actor takes one CPU (or what `actor_options` asks for: trainer actors take a GPU where
the cluster has one, see `evolve.trainers`) and owns a private sandbox root on its node; it
evaluates one batch at a time (one individual for towers), so a dying actor loses one batch
only and a per-evaluation deadline is measured from when the work started. The pool:

- replaces an actor that died and resubmits its batch (at most `retries` times; then the
  individuals are reported failed with the reason);
- kills an actor that overruns `timeout + grace` (the species has its own, tighter timeout;
  this is the backstop for a hung process) and reports its individuals as timed out;
- yields outcomes as they complete, so the driver can store them at once.

`evaluate_together` keeps several pools (one species each) busy at the same time.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from evolve.errors import EvolveError
from populations.base import EvalItem, Outcome, Species

ROOT_PREFIX = "evolve-actor-"  # + pid: a killed actor's root is removed by the next one on its node
POLL_SECONDS = 1.0  # how often the pool looks at deadlines while nothing completes
START_TIMEOUT = 180.0  # seconds an actor may take to start (worker process + imports)


@ray.remote(num_cpus=1, max_restarts=0)
class EvaluatorActor:
    """Evaluates batches of individuals of one species inside its own sandbox root."""

    def __init__(self, species: Species[Any], run_id: str, sandbox_parent: str | None = None) -> None:
        self.species = species
        self.run_id = run_id
        parent = Path(sandbox_parent or tempfile.gettempdir())
        _sweep_dead_roots(parent)
        self.root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-", dir=parent))
        os.chmod(self.root, 0o711)  # sandboxes drop to an unprivileged user who must reach them
        self.node = ray.get_runtime_context().get_node_id()

    def ready(self) -> dict[str, Any]:
        ctx = ray.get_runtime_context()
        return {"node": self.node, "pid": os.getpid(), "root": str(self.root),
                "resources": dict(ctx.get_assigned_resources()), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}

    def evaluate(self, items: Sequence[EvalItem], timeout: float) -> list[Outcome]:
        start = time.perf_counter()
        try:
            items = _resolve_contexts(items)
            outcomes = self.species.evaluate(items, workdir=self.root, timeout=timeout, run_id=self.run_id)
        except Exception as exc:  # noqa: BLE001 - the actor boundary: a crash in the species is a failed result
            wall = (time.perf_counter() - start) / max(1, len(items))
            outcomes = [Outcome(it.individual_id, "failed", error=f"{type(exc).__name__}: {exc}",
                                wall_seconds=wall) for it in items]
        for o in outcomes:
            o.node = self.node
        return outcomes

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class _Task:
    items: list[EvalItem]
    attempt: int = 1


@dataclass
class _Slot:
    """One actor place in the pool."""

    actor: Any
    generation: int = 0  # bumped on every replacement, to name it in events
    busy: Any = None  # ObjectRef in flight, or None
    task: _Task | None = None
    started: float = 0.0
    starting: Any = None  # a replacement's ready() ref until it has started: no work before that
    since: float = 0.0


def _resolve_contexts(items: Sequence[EvalItem]) -> list[EvalItem]:
    """Fetch each distinct context shipped through the object store once per call."""
    refs = {c.hex(): c for c in (it.context for it in items) if isinstance(c, ray.ObjectRef)}
    if not refs:
        return list(items)
    values = dict(zip(refs, ray.get(list(refs.values()))))
    return [replace(it, context=values[it.context.hex()]) if isinstance(it.context, ray.ObjectRef) else it
            for it in items]


EventSink = Callable[[str, str, str | None], None]  # (kind, message, individual_id)


class EvaluatorPool:
    """A fixed number of evaluator actors; `evaluate(items)` yields outcomes as they finish.

    `actor_options` are Ray's actor resource options (default: one CPU); `role` names the
    actors in events and errors ("evaluator", "trainer").
    """

    def __init__(self, species: Species[Any], *, run_id: str, n_actors: int, timeout: float,
                 retries: int = 2, grace: float = 60.0, on_event: EventSink | None = None,
                 sandbox_parent: str | None = None, actor_options: Mapping[str, Any] | None = None,
                 role: str = "evaluator") -> None:
        if n_actors < 1:
            raise EvolveError("evaluation.actors: must be >= 1")
        self.species = species
        self.actor_options = dict(actor_options or {"num_cpus": 1})
        self.role = role
        self.placements: list[dict[str, Any]] = []  # what each actor reported when it started
        self.run_id = run_id
        self.timeout = timeout
        self.retries = retries
        self.grace = grace
        self.on_event = on_event or (lambda kind, message, ind: None)
        self.sandbox_parent = sandbox_parent
        self.species_ref = ray.put(species)  # shipped once, shared by every actor
        self.slots = [_Slot(self._new_actor()) for _ in range(n_actors)]
        self.replaced = 0

    def _new_actor(self) -> Any:
        return EvaluatorActor.options(scheduling_strategy="SPREAD",  # type: ignore[attr-defined]
                                      **self.actor_options).remote(self.species_ref, self.run_id,
                                                                   self.sandbox_parent)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> list[dict[str, Any]]:
        """Block until every actor has started; says which did not, and why that may be."""
        refs = [s.actor.ready.remote() for s in self.slots]
        try:
            self.placements = list(ray.get(refs, timeout=timeout))
        except GetTimeoutError:
            asks = ", ".join(f"{k}={v:g}" for k, v in sorted(self.actor_options.items()))
            raise EvolveError(f"{self.role} actors did not start within {timeout:.0f}s: the cluster may have "
                              f"fewer free resources than {len(self.slots)} actor(s) with {asks} need "
                              "(evaluation.actors)") from None
        return self.placements

    @property
    def size(self) -> int:
        return len(self.slots)

    # --- the work loop ------------------------------------------------------------------
    def evaluate(self, items: Sequence[EvalItem]) -> Iterator[Outcome]:
        for _, outcome in evaluate_together([(self, items)]):
            yield outcome

    def _tasks(self, items: Sequence[EvalItem]) -> deque[_Task]:
        per_call = max(1, min(self.species.batch_size, math.ceil(len(items) / len(self.slots))))
        return deque(_Task(list(items[k:k + per_call])) for k in range(0, len(items), per_call))

    def _check_started(self) -> None:
        """Replacements become usable once started; a lost node's CPUs may never come back, so
        work goes only to actors that run, never queues behind one that cannot be placed."""
        for slot in self.slots:
            if slot.starting is None:
                continue
            done, _ = ray.wait([slot.starting], timeout=0)
            if not done:
                continue
            try:
                ray.get(slot.starting, timeout=10.0)
                slot.starting = None
            except (RayActorError, RayError) as exc:  # died while starting: try a fresh one
                self.on_event("actor_died", f"{self._name(slot)} failed to start: {_one_line(exc)}", None)
                self._replace(slot)

    def _starting(self) -> list[Any]:
        return [s.starting for s in self.slots if s.starting is not None]

    def _starved(self, queue: deque[_Task]) -> Iterator[Outcome]:
        """No actor of this pool can take work: after START_TIMEOUT of waiting for one to
        start, fail what waits (the caller waits on `_starting()` meanwhile)."""
        oldest = min((s.since for s in self.slots if s.starting is not None), default=time.monotonic())
        if time.monotonic() - oldest <= START_TIMEOUT:
            return
        while queue:
            task = queue.popleft()
            for it in task.items:
                yield Outcome(it.individual_id, "failed", attempts=task.attempt,
                              error=f"no {self.role} actor could start within {START_TIMEOUT:.0f}s "
                                    "(the cluster lost the resources it needs)")

    def _submit(self, slot: _Slot, task: _Task) -> None:
        slot.task = task
        slot.started = time.monotonic()
        slot.busy = slot.actor.evaluate.remote(task.items, self.timeout)

    def _limit(self, task: _Task) -> float:
        return self.timeout * len(task.items) + self.grace

    def _overdue(self, slot: _Slot) -> bool:
        return slot.task is not None and time.monotonic() - slot.started > self._limit(slot.task)

    def _release(self, slot: _Slot) -> _Task:
        task = slot.task or _Task([])  # only ever called for a busy slot
        slot.busy, slot.task = None, None
        return task

    def _name(self, slot: _Slot) -> str:
        return f"{'actor' if self.role == 'evaluator' else self.role + ' actor'} #{self.slots.index(slot)}"

    def _collect(self, slot: _Slot, ref: Any, queue: deque[_Task]) -> Iterator[Outcome]:
        task = self._release(slot)
        try:
            outcomes: list[Outcome] = ray.get(ref, timeout=60.0)
        except (RayActorError, RayTaskError, RayError) as exc:
            reason = _one_line(exc)
            dead = isinstance(exc, RayActorError)
            ids = ", ".join(it.individual_id for it in task.items[:4])
            self.on_event("actor_died" if dead else "actor_error",
                          f"{self._name(slot)} lost {len(task.items)} evaluation(s) [{ids}]: {reason}",
                          task.items[0].individual_id if len(task.items) == 1 else None)
            self._replace(slot)
            if task.attempt <= self.retries:
                self.on_event("retry", f"resubmitting {len(task.items)} evaluation(s) [{ids}] "
                                       f"(attempt {task.attempt + 1} of {self.retries + 1})",
                              task.items[0].individual_id if len(task.items) == 1 else None)
                queue.appendleft(_Task(task.items, task.attempt + 1))
                return
            for it in task.items:
                yield Outcome(it.individual_id, "failed", attempts=task.attempt,
                              error=f"evaluation failed {task.attempt} time(s); last: {reason}")
            return
        for o in outcomes:
            o.attempts = task.attempt
        yield from outcomes

    def _expire(self, slot: _Slot) -> Iterator[Outcome]:
        task = self._release(slot)
        limit = self._limit(task)
        node = ""
        self.on_event("timeout", f"{self._name(slot)} gave no result within {limit:.0f}s "
                                 f"(timeout {self.timeout:g}s x {len(task.items)} + grace {self.grace:g}s); killed",
                      task.items[0].individual_id if len(task.items) == 1 else None)
        self._replace(slot)
        for it in task.items:
            yield Outcome(it.individual_id, "timeout", attempts=task.attempt, node=node,
                          wall_seconds=limit / len(task.items),
                          error=f"no result within {limit:.0f}s; the {self.role} actor was killed")

    def _replace(self, slot: _Slot) -> None:
        try:
            ray.kill(slot.actor, no_restart=True)
        except RayError:
            pass  # already gone
        slot.actor = self._new_actor()
        slot.starting, slot.since = slot.actor.ready.remote(), time.monotonic()
        slot.generation += 1
        self.replaced += 1
        self.on_event("actor_replaced", f"{self._name(slot)} replaced", None)

    # --- shutting down ----------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Remove sandbox roots where the actors still live, then kill them."""
        refs = []
        for slot in self.slots:
            try:
                refs.append(slot.actor.cleanup.remote())
            except RayError:
                pass
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=timeout)
        for slot in self.slots:
            try:
                ray.kill(slot.actor, no_restart=True)
            except RayError:
                pass


class DriverPool:
    """`evaluation.actors: 0`: the species is evaluated in the driver process itself.

    Only for species that declare cheap, pure, self-contained evaluation (`Species.in_driver`,
    e.g. `numeric`, microseconds of numpy per individual): a Ray round trip per batch would
    cost a thousand times the evaluation. There is no actor to die or to kill, so no retry and
    no timeout is enforced; a species error becomes a failed outcome with its reason, as on
    an actor. Everything else — the store, the checkpoints, resume — is the same.
    """

    role = "driver"
    size = 0  # actors
    actor_options: dict[str, Any] = {}
    inline = True

    def __init__(self, species: Species[Any], *, run_id: str, timeout: float) -> None:
        if not getattr(species, "in_driver", False):
            raise EvolveError(f"species {species.name} cannot be evaluated in the driver (evaluation.actors: 0)")
        self.species = species
        self.run_id = run_id
        self.timeout = timeout
        self.placements: list[dict[str, Any]] = []
        self._root: Path | None = None
        self.node = ""

    def wait_ready(self, timeout: float = START_TIMEOUT) -> list[dict[str, Any]]:
        if ray.is_initialized():
            self.node = ray.get_runtime_context().get_node_id()
        self.placements = [{"node": self.node or "driver", "pid": os.getpid()}]
        return self.placements

    def evaluate(self, items: Sequence[EvalItem]) -> Iterator[Outcome]:
        if not items:
            return
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix=f"evolve-driver-{os.getpid()}-"))
        start = time.perf_counter()
        try:
            outcomes = self.species.evaluate(items, workdir=self._root, timeout=self.timeout, run_id=self.run_id)
        except Exception as exc:  # noqa: BLE001 - as on an actor: a crash in the species is a failed result
            wall = (time.perf_counter() - start) / len(items)
            outcomes = [Outcome(it.individual_id, "failed", error=f"{type(exc).__name__}: {exc}",
                                wall_seconds=wall) for it in items]
        node = self.node or "driver"
        for o in outcomes:
            o.node = node
        yield from outcomes

    def close(self, timeout: float = 10.0) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


def evaluate_together(work: Sequence[tuple[Any, Sequence[EvalItem]]]
                      ) -> Iterator[tuple[Any, Outcome]]:
    """Keep every pool busy with its own items at once; (pool, outcome) as each finishes.

    One `ray.wait` covers the work in flight on all pools, so a fast species never waits
    for a slow one; each pool keeps its own retries, deadlines and replacements. A
    `DriverPool` is evaluated in this process once the actors have their first work.
    """
    inline = [(pool, items) for pool, items in work if items and getattr(pool, "inline", False)]
    work = [(pool, items) for pool, items in work if not getattr(pool, "inline", False)]
    queues = {id(pool): pool._tasks(items) for pool, items in work if items}
    pools = [pool for pool, items in work if items]
    in_flight: dict[Any, tuple[EvaluatorPool, _Slot]] = {}
    while inline or any(queues[id(p)] for p in pools) or in_flight:
        for pool in pools:
            pool._check_started()
            queue = queues[id(pool)]
            for slot in pool.slots:
                if slot.busy is None and slot.starting is None and queue:
                    pool._submit(slot, queue.popleft())
                    in_flight[slot.busy] = (pool, slot)
        while inline:  # the actors are busy with their first work meanwhile
            pool, items = inline.pop(0)
            for outcome in pool.evaluate(items):
                yield pool, outcome
        busy = {id(pool) for pool, _ in in_flight.values()}
        starved = [pool for pool in pools if queues[id(pool)] and id(pool) not in busy]
        for pool in starved:  # every free actor of it is a replacement still waiting for resources
            for outcome in pool._starved(queues[id(pool)]):
                yield pool, outcome
        waits = list(in_flight) + [ref for pool in starved for ref in pool._starting()]
        if not waits:
            continue
        ready, _ = ray.wait(waits, num_returns=1, timeout=POLL_SECONDS)
        ready = [r for r in ready if r in in_flight]  # a replacement that started is seen above
        if ready:  # collect every other result that is already there, too
            rest = [r for r in in_flight if r not in ready]
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0) if rest else ([], [])
            ready = list(ready) + list(more)
        for ref in ready:
            pool, slot = in_flight.pop(ref)
            for outcome in pool._collect(slot, ref, queues[id(pool)]):
                yield pool, outcome
        for ref, (pool, slot) in list(in_flight.items()):
            if pool._overdue(slot):
                in_flight.pop(ref)
                for outcome in pool._expire(slot):
                    yield pool, outcome


def _sweep_dead_roots(parent: Path) -> None:
    """Remove sandbox roots left by actors that were killed (their pid is gone)."""
    for path in parent.glob(f"{ROOT_PREFIX}*-*"):
        pid = path.name[len(ROOT_PREFIX):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # a live process of another user


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), type(exc).__name__)
    return f"{type(exc).__name__}: {first.strip()}"[:300]
