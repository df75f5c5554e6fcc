"""Evaluator actors on Ray and the pool that keeps them busy, alive and on time.

Each actor takes one CPU and owns a private sandbox root on its node; it evaluates one
batch at a time (one individual for towers), so a dying actor loses one batch only and a
per-evaluation deadline is measured from when the work started. The pool:

- replaces an actor that died and resubmits its batch (at most `retries` times; then the
  individuals are reported failed with the reason);
- kills an actor that overruns `timeout + grace` (the species has its own, tighter timeout;
  this is the backstop for a hung process) and reports its individuals as timed out;
- yields outcomes as they complete, so the driver can store them at once.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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
        return {"node": self.node, "pid": os.getpid(), "root": str(self.root)}

    def evaluate(self, items: Sequence[EvalItem], timeout: float) -> list[Outcome]:
        start = time.perf_counter()
        try:
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


EventSink = Callable[[str, str, str | None], None]  # (kind, message, individual_id)


class EvaluatorPool:
    """A fixed number of evaluator actors; `evaluate(items)` yields outcomes as they finish."""

    def __init__(self, species: Species[Any], *, run_id: str, n_actors: int, timeout: float,
                 retries: int = 2, grace: float = 60.0, on_event: EventSink | None = None,
                 sandbox_parent: str | None = None) -> None:
        if n_actors < 1:
            raise EvolveError("evaluation.actors: must be >= 1")
        self.species = species
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
        return EvaluatorActor.options(scheduling_strategy="SPREAD").remote(  # type: ignore[attr-defined]
            self.species_ref, self.run_id, self.sandbox_parent)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> list[dict[str, Any]]:
        """Block until every actor has started; says which did not, and why that may be."""
        refs = [s.actor.ready.remote() for s in self.slots]
        try:
            return list(ray.get(refs, timeout=timeout))
        except GetTimeoutError:
            raise EvolveError(f"evaluator actors did not start within {timeout:.0f}s: the cluster may have "
                              f"fewer free CPUs than evaluation.actors={len(self.slots)}") from None

    @property
    def size(self) -> int:
        return len(self.slots)

    # --- the work loop ------------------------------------------------------------------
    def evaluate(self, items: Sequence[EvalItem]) -> Iterator[Outcome]:
        if not items:
            return
        per_call = max(1, min(self.species.batch_size, math.ceil(len(items) / len(self.slots))))
        queue = deque(_Task(list(items[k:k + per_call])) for k in range(0, len(items), per_call))
        by_ref: dict[Any, _Slot] = {}
        while queue or by_ref:
            self._check_started()
            for slot in self.slots:
                if slot.busy is None and slot.starting is None and queue:
                    self._submit(slot, queue.popleft())
                    by_ref[slot.busy] = slot
            if not by_ref:  # every free slot is a replacement still waiting for resources
                yield from self._starved(queue)
                continue
            ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=POLL_SECONDS)
            if ready:  # collect every other result that is already there, too
                rest = [r for r in by_ref if r not in ready]
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0) if rest else ([], [])
                ready = list(ready) + list(more)
            for ref in ready:
                slot = by_ref.pop(ref)
                yield from self._collect(slot, ref, queue)
            for ref, slot in list(by_ref.items()):
                if self._overdue(slot):
                    by_ref.pop(ref)
                    yield from self._expire(slot)

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
                self.on_event("actor_died", f"actor #{self.slots.index(slot)} failed to start: {_one_line(exc)}",
                              None)
                self._replace(slot)

    def _starved(self, queue: deque[_Task]) -> Iterator[Outcome]:
        """No actor can take work: wait for one to start; after START_TIMEOUT fail what waits."""
        pending = [s.starting for s in self.slots if s.starting is not None]
        if pending:
            ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
        oldest = min((s.since for s in self.slots if s.starting is not None), default=time.monotonic())
        if time.monotonic() - oldest <= START_TIMEOUT:
            return
        while queue:
            task = queue.popleft()
            for it in task.items:
                yield Outcome(it.individual_id, "failed", attempts=task.attempt,
                              error=f"no evaluator actor could start within {START_TIMEOUT:.0f}s "
                                    "(the cluster lost the CPUs it needs)")

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

    def _collect(self, slot: _Slot, ref: Any, queue: deque[_Task]) -> Iterator[Outcome]:
        task = self._release(slot)
        try:
            outcomes: list[Outcome] = ray.get(ref, timeout=60.0)
        except (RayActorError, RayTaskError, RayError) as exc:
            reason = _one_line(exc)
            dead = isinstance(exc, RayActorError)
            ids = ", ".join(it.individual_id for it in task.items[:4])
            self.on_event("actor_died" if dead else "actor_error",
                          f"actor #{self.slots.index(slot)} lost {len(task.items)} evaluation(s) [{ids}]: {reason}",
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
        index = self.slots.index(slot)
        node = ""
        self.on_event("timeout", f"actor #{index} gave no result within {limit:.0f}s "
                                 f"(timeout {self.timeout:g}s x {len(task.items)} + grace {self.grace:g}s); killed",
                      task.items[0].individual_id if len(task.items) == 1 else None)
        self._replace(slot)
        for it in task.items:
            yield Outcome(it.individual_id, "timeout", attempts=task.attempt, node=node,
                          wall_seconds=limit / len(task.items),
                          error=f"no result within {limit:.0f}s; the evaluator actor was killed")

    def _replace(self, slot: _Slot) -> None:
        try:
            ray.kill(slot.actor, no_restart=True)
        except RayError:
            pass  # already gone
        slot.actor = self._new_actor()
        slot.starting, slot.since = slot.actor.ready.remote(), time.monotonic()
        slot.generation += 1
        self.replaced += 1
        self.on_event("actor_replaced", f"actor #{self.slots.index(slot)} replaced", None)

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
