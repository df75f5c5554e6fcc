"""Evaluator actors on Ray and the pool that keeps them busy, alive and on time.

Each actor takes one CPU (or what `actor_options` asks for: trainer actors take a GPU where
the cluster has one, see `evolve.trainers`) and owns a private sandbox root on its node; it
evaluates one batch at a time (one individual for towers), so a dying actor loses one batch
only and a per-evaluation deadline is measured from when the work started. The pool (an
`evolve.pools.Pool`):

- replaces an actor that died and resubmits its batch (at most `retries` times; then the
  individuals are reported failed with the reason);
- kills an actor that overruns `timeout + grace` (the species has its own, tighter timeout;
  this is the backstop for a hung process) and reports its individuals as timed out;
- hands back outcomes as they complete, so the driver can store them at once.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import ray
from ray.actor import ActorHandle
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from evolve.calibrate import Clock
from evolve.config import AnySpecies
from evolve.errors import EvolveError
from evolve.pools import START_TIMEOUT, Placement, Pool, Waitable
from populations.base import EvalItem, Outcome

ROOT_PREFIX = "evolve-actor-"  # + pid: a killed actor's root is removed by the next one on its node

EventSink = Callable[[str, str, str | None], None]  # (kind, message, individual_id)


@ray.remote(num_cpus=1, max_restarts=0)
class EvaluatorActor:
    """Evaluates batches of individuals of one species inside its own sandbox root."""

    def __init__(self, species: AnySpecies, run_id: str, sandbox_parent: str | None = None,
                 calibrate_every: float | None = None) -> None:
        self.species = species
        self.run_id = run_id
        parent = Path(sandbox_parent or tempfile.gettempdir())
        _sweep_dead_roots(parent)
        self.root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-", dir=parent))
        os.chmod(self.root, 0o711)  # sandboxes drop to an unprivileged user who must reach them
        self.node = ray.get_runtime_context().get_node_id()
        # this node's speed and load as the actor starts and again now and then, under
        # evaluation.calibrate (calibrate_every set) for species with timing metrics
        self.clock = (Clock(calibrate_every, lambda: species.reference_timing(self.root))
                      if species.timing and calibrate_every is not None else None)
        if self.clock is not None:
            self.clock.current()

    def ready(self) -> Placement:
        ctx = ray.get_runtime_context()
        return {"node": self.node, "pid": os.getpid(), "root": str(self.root),
                "resources": dict(ctx.get_assigned_resources()), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}

    def evaluate(self, items: Sequence[EvalItem], timeout: float) -> list[Outcome]:
        reference = self.clock.current() if self.clock is not None else None  # the load before the work
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
            o.reference = reference
        return outcomes

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _resolve_contexts(items: Sequence[EvalItem]) -> list[EvalItem]:
    """Fetch each distinct context shipped through the object store once per call."""
    refs = {c.hex(): c for c in (it.context for it in items) if isinstance(c, ray.ObjectRef)}
    if not refs:
        return list(items)
    values = dict(zip(refs, ray.get(list(refs.values()))))
    return [replace(it, context=values[it.context.hex()]) if isinstance(it.context, ray.ObjectRef) else it
            for it in items]


@dataclass
class _Task:
    items: list[EvalItem]
    attempt: int = 1


@dataclass
class _Slot:
    """One actor place in the pool."""

    actor: ActorHandle
    task: _Task | None = None  # in flight on this actor
    started: float = 0.0  # when the task was submitted (monotonic)
    starting: ray.ObjectRef[Placement] | None = None  # a replacement's ready() until it has started
    since: float = 0.0  # when the replacement was asked for (monotonic)
    node: str = ""  # the node the actor runs on, once it has started


class EvaluatorPool(Pool):
    """A fixed number of evaluator actors.

    `actor_options` are Ray's actor resource options (default: one CPU); `role` names the
    actors in events and errors ("evaluator", "trainer").
    """

    def __init__(self, species: AnySpecies, *, run_id: str, n_actors: int, timeout: float,
                 retries: int = 2, grace: float = 60.0, on_event: EventSink | None = None,
                 sandbox_parent: str | None = None, actor_options: Mapping[str, float] | None = None,
                 role: str = "evaluator", calibrate_every: float | None = None) -> None:
        if n_actors < 1:
            raise EvolveError("evaluation.actors: must be >= 1")
        self.species = species
        self.actor_options: Mapping[str, float] = dict(actor_options or {"num_cpus": 1})
        self.role = role
        self.placements: list[Placement] = []  # what each actor reported when it started
        self.run_id = run_id
        self.timeout = timeout
        self.retries = retries
        self.grace = grace
        self.on_event: EventSink = on_event or (lambda kind, message, ind: None)
        self.sandbox_parent = sandbox_parent
        self.calibrate_every = calibrate_every
        self.species_ref = ray.put(species)  # shipped once, shared by every actor
        self.replaced = 0  # actors replaced so far
        self._slots = [_Slot(self._new_actor()) for _ in range(n_actors)]
        self._queue: deque[_Task] = deque()
        self._in_flight: dict[ray.ObjectRef[list[Outcome]], _Slot] = {}

    def _new_actor(self) -> ActorHandle:
        return EvaluatorActor.options(scheduling_strategy="SPREAD",  # type: ignore[attr-defined]  # ray.remote's class wrapper is untyped
                                      **self.actor_options).remote(self.species_ref, self.run_id,
                                                                   self.sandbox_parent, self.calibrate_every)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> list[Placement]:
        refs = [s.actor.ready.remote() for s in self._slots]
        try:
            self.placements = list(ray.get(refs, timeout=timeout))
            for slot, placement in zip(self._slots, self.placements):
                slot.node = str(placement["node"])
        except GetTimeoutError:
            asks = ", ".join(f"{k}={v:g}" for k, v in sorted(self.actor_options.items()))
            raise EvolveError(f"{self.role} actors did not start within {timeout:.0f}s: the cluster may have "
                              f"fewer free resources than {len(self._slots)} actor(s) with {asks} need "
                              "(evaluation.actors)") from None
        return self.placements

    @property
    def size(self) -> int:
        return len(self._slots)

    # --- the Pool protocol ----------------------------------------------------------------
    def submit(self, items: Sequence[EvalItem]) -> None:
        if not items:
            return
        per_call = max(1, min(self.species.batch_size, math.ceil(len(items) / len(self._slots))))
        groups: dict[tuple[str, ...], list[EvalItem]] = {}  # one call's items avoid the same nodes
        for it in items:
            groups.setdefault(it.avoid, []).append(it)
        for group in groups.values():
            self._queue.extend(_Task(group[k:k + per_call]) for k in range(0, len(group), per_call))
        self._feed()

    def poll(self) -> list[Outcome]:
        out: list[Outcome] = []
        self._check_started()
        if self._in_flight:  # every result already there, at once
            ready, _ = ray.wait(list(self._in_flight), num_returns=len(self._in_flight), timeout=0)
            for ref in ready:
                out += self._collect(self._in_flight.pop(ref), ref)
        for ref, slot in list(self._in_flight.items()):
            if slot.task is not None and time.monotonic() - slot.started > self._limit(slot.task):
                del self._in_flight[ref]
                out += self._expire(slot)
        self._feed()
        if self._queue and not self._in_flight:  # every free actor is a replacement still starting
            out += self._starved()
        return out

    def idle(self) -> bool:
        return not self._queue and not self._in_flight

    def waiting_on(self) -> list[Waitable]:
        # Work in flight, and the replacements that queued work waits for: a pool that is
        # not idle always has one or the other.
        starting = [s.starting for s in self._slots if s.starting is not None] if self._queue else []
        return [*self._in_flight, *starting]

    # --- keeping actors busy, alive and on time ----------------------------------------------
    def _feed(self) -> None:
        for slot in self._slots:
            if slot.task is None and slot.starting is None and self._queue:
                task = self._take(slot)
                if task is None:
                    continue
                slot.task, slot.started = task, time.monotonic()
                self._in_flight[slot.actor.evaluate.remote(slot.task.items, self.timeout)] = slot

    def _take(self, slot: _Slot) -> _Task | None:
        """The first queued task for this actor: one that avoids its node only when no running
        actor is on a node the task does not avoid (a re-evaluation then waits for one)."""
        nodes = {s.node for s in self._slots if s.starting is None}
        for k, task in enumerate(self._queue):
            avoid = set(task.items[0].avoid) if task.items else set()
            if slot.node not in avoid or not nodes - avoid:
                del self._queue[k]
                return task
        return None

    def _check_started(self) -> None:
        """Replacements become usable once started; a lost node's CPUs may never come back, so
        work goes only to actors that run, never queues behind one that cannot be placed."""
        for slot in self._slots:
            if slot.starting is None:
                continue
            done, _ = ray.wait([slot.starting], timeout=0)
            if not done:
                continue
            try:
                slot.node = str(ray.get(slot.starting, timeout=10.0)["node"])
                slot.starting = None
            except (RayActorError, RayError) as exc:  # died while starting: try a fresh one
                self.on_event("actor_died", f"{self._name(slot)} failed to start: {_one_line(exc)}", None)
                self._replace(slot)

    def _starved(self) -> list[Outcome]:
        """No actor can take work: after START_TIMEOUT of waiting for one to start, fail
        what waits."""
        oldest = min((s.since for s in self._slots if s.starting is not None), default=time.monotonic())
        if time.monotonic() - oldest <= START_TIMEOUT:
            return []
        tasks, self._queue = list(self._queue), deque()
        return [Outcome(it.individual_id, "failed", attempts=task.attempt,
                        error=f"no {self.role} actor could start within {START_TIMEOUT:.0f}s "
                              "(the cluster lost the resources it needs)")
                for task in tasks for it in task.items]

    def _limit(self, task: _Task) -> float:
        return self.timeout * len(task.items) + self.grace

    def _release(self, slot: _Slot) -> _Task:
        task = slot.task or _Task([])  # only ever called for a busy slot
        slot.task = None
        return task

    def _name(self, slot: _Slot) -> str:
        return f"{'actor' if self.role == 'evaluator' else self.role + ' actor'} #{self._slots.index(slot)}"

    def _collect(self, slot: _Slot, ref: ray.ObjectRef[list[Outcome]]) -> list[Outcome]:
        task = self._release(slot)
        try:
            outcomes: list[Outcome] = ray.get(ref, timeout=60.0)
        except (RayActorError, RayTaskError, RayError) as exc:
            reason = _one_line(exc)
            dead = isinstance(exc, RayActorError)
            ids = ", ".join(it.individual_id for it in task.items[:4])
            one = task.items[0].individual_id if len(task.items) == 1 else None
            self.on_event("actor_died" if dead else "actor_error",
                          f"{self._name(slot)} lost {len(task.items)} evaluation(s) [{ids}]: {reason}", one)
            self._replace(slot)
            if task.attempt <= self.retries:
                self.on_event("retry", f"resubmitting {len(task.items)} evaluation(s) [{ids}] "
                                       f"(attempt {task.attempt + 1} of {self.retries + 1})", one)
                self._queue.appendleft(_Task(task.items, task.attempt + 1))
                return []
            return [Outcome(it.individual_id, "failed", attempts=task.attempt,
                            error=f"evaluation failed {task.attempt} time(s); last: {reason}")
                    for it in task.items]
        for o in outcomes:
            o.attempts = task.attempt
        return outcomes

    def _expire(self, slot: _Slot) -> list[Outcome]:
        task = self._release(slot)
        limit = self._limit(task)
        self.on_event("timeout", f"{self._name(slot)} gave no result within {limit:.0f}s "
                                 f"(timeout {self.timeout:g}s x {len(task.items)} + grace {self.grace:g}s); killed",
                      task.items[0].individual_id if len(task.items) == 1 else None)
        self._replace(slot)
        return [Outcome(it.individual_id, "timeout", attempts=task.attempt, wall_seconds=limit / len(task.items),
                        error=f"no result within {limit:.0f}s; the {self.role} actor was killed")
                for it in task.items]

    def _replace(self, slot: _Slot) -> None:
        try:
            ray.kill(slot.actor, no_restart=True)
        except RayError:
            pass  # already gone
        slot.actor = self._new_actor()
        slot.starting, slot.since = slot.actor.ready.remote(), time.monotonic()
        self.replaced += 1
        self.on_event("actor_replaced", f"{self._name(slot)} replaced", None)

    # --- shutting down ----------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Remove sandbox roots where the actors still live, then kill them."""
        refs: list[ray.ObjectRef[None]] = []
        for slot in self._slots:
            try:
                refs.append(slot.actor.cleanup.remote())
            except RayError:
                pass
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=timeout)
        for slot in self._slots:
            try:
                ray.kill(slot.actor, no_restart=True)
            except RayError:
                pass


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
