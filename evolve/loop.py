"""The evolution loop: pymoo ask/tell around Ray evaluations, one store commit per generation.

    state  = checkpoint or fresh(seed)         # pymoo algorithm + RNG for individual seeds
    repeat:
        off = algorithm.ask()                  # deterministic given the state
        name them g{gen}-{k}, draw their seeds
        reuse staged outcomes, evaluate the rest on the actors (staging each as it lands)
        algorithm.tell(off with F, G)
        commit individuals + evaluations + fronts + generation + checkpoint   (one transaction)

A killed driver resumes from the last checkpoint (a pickled engine state, written when
CHECKPOINT_EVERY seconds have passed, and after the last generation). The generations
committed after it are replayed: `ask()` gives the same offspring again — checked against
the stored hashes and seeds — and `tell()` gets their stored objectives, so nothing is
evaluated twice. In the running generation, the individuals already evaluated come from
the staging table and the rest are evaluated now. No evaluation is lost, none is stored
twice, and the resumed run is the run an uninterrupted driver would have made.
"""
from __future__ import annotations

import json
import os
import pickle
import platform
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from evolve.config import Resolved
from evolve.errors import EvolveError
from evolve.store import GenerationRecord, Store, metrics_json
from populations.base import Candidate, EvalItem, Outcome
from populations.objectives import Scored, score

STATUS_FILE = "status.json"
# Finished evaluations are staged (one small transaction each time) at once when they cost
# more than STAGE_WORTH seconds — towers — and otherwise in bulk at most every STAGE_EVERY
# seconds — cheap vectorised problems, where a lost second of work is cheaper than a
# transaction per evaluation. What the generation's own commit stores needs no staging.
STAGE_WORTH = 0.25
STAGE_EVERY = 1.0
# A checkpoint costs a pickle of the whole algorithm state; replaying a generation costs one
# ask/tell. Towers checkpoint every generation, cheap problems every few seconds.
CHECKPOINT_EVERY = 5.0
# A generation is committed at once when it took COMMIT_EVERY seconds or more (towers);
# cheaper ones are gathered and committed together at most COMMIT_EVERY seconds apart, as
# whole generations in one transaction (a statement's fixed cost dominates 100-row inserts).
COMMIT_EVERY = 1.0


@dataclass
class EngineState:
    """Everything `--resume` needs besides the store's rows (pickled as the checkpoint)."""

    algorithm: Any  # pymoo algorithm after the last tell
    seed_rng: np.random.Generator  # draws each individual's 64-bit seed
    generation: int  # the next generation to ask for


@dataclass(frozen=True)
class GenerationStats:
    generation: int
    hypervolume: float | None
    evaluated: int
    failed: int
    reused: int
    population: int
    front_size: int
    wall_seconds: float


@dataclass
class RunSummary:
    run_id: str
    run_dir: Path
    status: str  # finished | stalled
    generations: int
    hypervolume: list[float | None] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per engine phase, this session


class Observer:
    """Hooks for progress displays; every method is optional."""

    def started(self, run_id: str, start_generation: int, generations: int, n_actors: int,
                cluster: Any) -> None: ...

    def generation_started(self, generation: int, size: int, reused: int) -> None: ...

    def evaluated(self, outcome: Outcome, feasible: bool) -> None: ...

    def generation_done(self, stats: GenerationStats) -> None: ...

    def event(self, kind: str, message: str) -> None: ...


def versions() -> dict[str, str]:
    import duckdb
    import pymoo
    import ray

    return {"python": platform.python_version(), "pymoo": pymoo.__version__, "ray": ray.__version__,
            "duckdb": duckdb.__version__, "numpy": np.__version__}


def _dumps(state: EngineState) -> bytes:
    """The checkpoint: cloudpickle, since pymoo's NSGA-III holds local functions (plain
    `pickle.loads` reads it back)."""
    from ray import cloudpickle

    return bytes(cloudpickle.dumps(state, protocol=5))


def new_run_id(name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


def individual_id(generation: int, k: int) -> str:
    return f"g{generation:03d}-{k:03d}"


# --- starting and finding runs ----------------------------------------------------------------
def create_run(resolved: Resolved, runs_root: Path, *, run_id: str | None = None) -> tuple[str, Path]:
    """Make `runs_root/<run_id>/` with a fresh store holding the run's row."""
    cfg = resolved.config
    run_id = run_id or new_run_id(cfg.name)
    run_dir = runs_root / run_id
    if run_dir.exists():
        raise EvolveError(f"{run_dir}: already exists; pick another run id or --resume it")
    run_dir.mkdir(parents=True)
    with Store.open(run_dir, create=True) as store:
        store.create_run(
            run_id=run_id, name=cfg.name, species=resolved.species.name, seed=cfg.seed,
            generations=cfg.generations,
            objectives=[{"metric": o.metric, "direction": o.direction, "ref": o.ref} for o in resolved.objectives],
            constraints=[{"metric": c.metric, "le": c.le, "ge": c.ge, "eq": c.eq} for c in resolved.constraints],
            config=cfg.to_json_data(), versions=versions())
        store.event(run_id, "run_created", f"run {run_id} created (species {resolved.species.name}, "
                                           f"{cfg.generations} generations of {cfg.population.size})")
    return run_id, run_dir


def find_run(runs_root: Path, ref: str) -> Path:
    """A run directory from a run id (under `runs_root`) or a path."""
    for candidate in (Path(ref), runs_root / ref):
        if (candidate / "store.duckdb").exists():
            return candidate
    raise EvolveError(f"no run {ref!r}: neither {ref} nor {runs_root / ref} holds a store.duckdb")


def check_same_config(stored: Mapping[str, Any], current: Mapping[str, Any], run_id: str) -> None:
    """A resumed run must use the config it started with; name the first difference."""
    diff = _first_difference(stored, current, "")
    if diff:
        raise EvolveError(f"the config differs from the one run {run_id} started with ({diff}); "
                          "resume with the original config")


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if a != b:
        return f"{path}: {a!r} then, {b!r} now"
    return None


# --- the engine ----------------------------------------------------------------------------
class Engine:
    """Runs the generations of one run against a store and an evaluator pool."""

    def __init__(self, resolved: Resolved, run_id: str, run_dir: Path, store: Store,
                 observer: Observer | None = None) -> None:
        self.resolved = resolved
        self.cfg = resolved.config
        self.species = resolved.species
        self.run_id = run_id
        self.run_dir = run_dir
        self.store = store
        self.observer = observer or Observer()
        self.ref_point = resolved.ref_point
        self._status_written = 0.0
        self._live: dict[str, Any] = {}
        self._versions = versions()
        self._stage_buf: list[tuple[int, Candidate, Outcome]] = []
        self._staged_until = -1  # staged rows (from before a restart) exist up to this generation
        self.timings = {k: 0.0 for k in ("ask", "evaluate", "tell", "checkpoint", "commit", "stage", "replay")}
        self._staged_at = 0.0
        self.checkpoint_every = CHECKPOINT_EVERY
        self._checkpointed_at = time.perf_counter()
        self._pending: list[GenerationRecord] = []  # whole generations not yet committed
        self._committed_at = time.perf_counter()
        self._staged_any = False  # whether this generation has rows in the staging table

    # --- state ------------------------------------------------------------------------------
    def fresh_state(self) -> EngineState:
        from evolve.selection import make_algorithm

        cfg = self.cfg
        algorithm = make_algorithm(
            cfg.algorithm.name, self.species, pop_size=cfg.population.size,
            n_offsprings=cfg.population.offspring, n_obj=len(self.resolved.objectives),
            n_ieq_constr=1 + len(self.resolved.constraints), generations=cfg.generations,
            seed=cfg.seed, partitions=cfg.algorithm.partitions)
        seed_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x5EED]))
        return EngineState(algorithm, seed_rng, 0)

    def load_state(self) -> EngineState:
        """The last checkpoint (or a fresh state), brought up to the last committed generation."""
        found = self.store.checkpoint(self.run_id)
        if found is None:
            state = self.fresh_state()
        else:
            generation, blob, saved = found
            if saved.get("pymoo") != self._versions["pymoo"]:
                raise EvolveError(f"run {self.run_id} was checkpointed with pymoo {saved.get('pymoo')}, "
                                  f"this is pymoo {self._versions['pymoo']}; resume it with the same installation")
            state = pickle.loads(blob)
            if state.generation != generation:
                raise EvolveError(f"run {self.run_id}: checkpoint is inconsistent "
                                  f"(generation {state.generation} vs {generation})")
        last = self.store.last_generation(self.run_id)
        t = time.perf_counter()
        replayed = 0
        while last is not None and state.generation <= last:
            self._replay(state)
            replayed += 1
        self.timings["replay"] += time.perf_counter() - t
        if replayed:
            self._event("replayed", f"generations {state.generation - replayed}..{state.generation - 1} replayed "
                                    "from the store (no evaluation repeated)", generation=state.generation)
        return state

    def _ask(self, state: EngineState) -> tuple[Any, list[Candidate]]:
        """The next offspring, named and seeded; (None, []) when variation found nothing new."""
        g = state.generation
        off = state.algorithm.ask()
        if off is None or len(off) == 0:
            return None, []
        cands: list[Candidate] = [ind.X[0] for ind in off]
        for k, c in enumerate(cands):
            c.id = individual_id(g, k)
            c.seed = int(state.seed_rng.integers(0, 2**64, dtype=np.uint64))
        return off, cands

    def _tell(self, state: EngineState, off: Any, scored: list[Scored]) -> None:
        from evolve.selection import tell

        F = np.array([s.F for s in scored])  # (n, n_obj) minimisation form
        G = np.array([s.G for s in scored])  # (n, 1 + n_constr)
        tell(state.algorithm, off, F, G)
        state.algorithm.off = None  # not needed by the next ask; keeps checkpoints small
        state.generation += 1

    def _replay(self, state: EngineState) -> None:
        """Redo a committed generation's ask/tell from the store, checking it is the same."""
        g = state.generation
        off, cands = self._ask(state)
        rows = self.store.query(
            """SELECT i.individual_id, i.hash, i.seed, e.status, e.metrics
               FROM individuals i JOIN evaluations e USING (run_id, individual_id)
               WHERE i.run_id = ? AND i.generation = ? ORDER BY i.individual_id""", [self.run_id, g])
        mine = [(c.id, c.hash, c.seed) for c in cands]
        stored = [(r[0], r[1], int(r[2])) for r in rows]
        if mine != stored:
            first = next((f"{a} != {b}" for a, b in zip(mine, stored) if a != b), f"{len(mine)} vs {len(stored)}")
            raise EvolveError(f"run {self.run_id}: replaying generation {g} does not give the stored individuals "
                              f"({first}); this installation cannot resume it")
        scored = [score(r[3], json.loads(r[4]), self.resolved.objectives, self.resolved.constraints) for r in rows]
        self._tell(state, off, scored)

    # --- the loop -------------------------------------------------------------------------------
    def run(self, pool: Any, cluster: Any = None) -> RunSummary:
        state = self.load_state()
        start = state.generation
        found = self.store.query("SELECT max(generation) FROM staged WHERE run_id = ?", [self.run_id])
        self._staged_until = -1 if found[0][0] is None else int(found[0][0])
        kind = "run_resumed" if start > 0 or self.store.staged(self.run_id, start) else "run_started"
        self._event(kind, f"{kind.replace('_', ' ')} at generation {start} with {pool.size} evaluator actor(s)",
                    generation=start)
        self.store.set_status(self.run_id, "running")
        self.observer.started(self.run_id, start, self.cfg.generations, pool.size, cluster)
        status = "finished"
        try:
            while state.generation < self.cfg.generations:
                if not self._generation(state, pool):
                    status = "stalled"
                    break
            self._commit(force=True)
        except BaseException:
            self._commit_on_the_way_out()
            self.store.set_status(self.run_id, "interrupted")
            self._write_status(state.generation, "interrupted", force=True)
            raise
        self.store.set_status(self.run_id, "finished")
        self._event("run_finished", f"run {status} after {state.generation} generation(s)",
                    generation=state.generation - 1)
        self._write_status(state.generation, "finished", force=True)
        hv = [r[0] for r in self.store.query(
            "SELECT hypervolume FROM generations WHERE run_id = ? ORDER BY generation", [self.run_id])]
        return RunSummary(self.run_id, self.run_dir, status, state.generation, hv, dict(self.timings))

    def _generation(self, state: EngineState, pool: Any) -> bool:
        from evolve.selection import hypervolume, rank_and_crowding

        g = state.generation
        t0 = time.perf_counter()
        off, cands = self._ask(state)
        t_ask = time.perf_counter()
        if off is None:
            self._event("stalled", "variation produced no new individual (all duplicates); stopping", generation=g)
            return False

        outcomes: dict[str, Outcome] = {}
        scores: dict[str, Scored] = {}
        staged = self.store.staged(self.run_id, g) if g <= self._staged_until else {}
        self._staged_any = bool(staged)
        for ind_id, (hash_, blob) in staged.items():
            match = next((c for c in cands if c.id == ind_id and c.hash == hash_), None)
            if match is not None:
                outcomes[ind_id] = pickle.loads(blob)
        reused = len(outcomes)
        if reused:
            self._event("reused", f"{reused} evaluation(s) staged before the restart are kept", generation=g)
        by_id = {c.id: c for c in cands}
        todo = [EvalItem(c.id, c.genome, c.hash, c.seed) for c in cands if c.id not in outcomes]
        self.observer.generation_started(g, len(cands), reused)
        self._live = {"evaluated": reused, "failed": 0, "size": len(cands)}
        self._write_status(g, "running")

        self._staged_at = time.monotonic()
        t_eval = time.perf_counter()
        for outcome in pool.evaluate(todo):
            self._keep_trajectory(outcome)
            cand = by_id[outcome.individual_id]
            self._stage(g, cand, outcome)
            outcomes[cand.id] = outcome
            s = scores[cand.id] = self._score(outcome)
            self._live["evaluated"] += 1
            self._live["failed"] += outcome.status != "ok"
            if outcome.status != "ok":
                self._event("evaluation_" + outcome.status, f"{cand.id}: {outcome.error or outcome.status}",
                            generation=g, individual_id=cand.id)
            self.observer.evaluated(outcome, s.CV <= 0)
            self._write_status(g, "running")

        self._stage_buf.clear()  # the generation commit below stores them all
        t_told = time.perf_counter()
        scored = [scores.get(c.id) or self._score(outcomes[c.id]) for c in cands]
        self._tell(state, off, scored)

        pop = state.algorithm.pop
        popF = pop.get("F").astype(float)
        popCV = pop.get("CV")[:, 0].astype(float)
        rank, crowding = rank_and_crowding(popF, popCV)
        hv = hypervolume(popF, popCV, self.ref_point)
        failed = sum(outcomes[c.id].status != "ok" for c in cands)
        t_ranked = time.perf_counter()
        checkpoint = None
        last = state.generation >= self.cfg.generations
        if last or t_ranked - self._checkpointed_at >= self.checkpoint_every:
            checkpoint = _dumps(state)
            self._checkpointed_at = time.perf_counter()
        t_pickled = time.perf_counter()
        rec = GenerationRecord(
            generation=g,
            individuals=[self._individual_row(c, g) for c in cands],
            evaluations=[self._evaluation_row(c, g, outcomes[c.id], s) for c, s in zip(cands, scored)],
            fronts=[(self.run_id, g, ind.X[0].id, int(r), None if np.isnan(cd) else float(cd))
                    for ind, r, cd in zip(pop, rank, crowding)],
            hypervolume=hv, evaluated=len(cands) - reused, failed=failed, reused=reused,
            wall_seconds=time.perf_counter() - t0,
            checkpoint=checkpoint, staged=self._staged_any, versions=self._versions)
        self._pending.append(rec)
        self._commit(force=last or rec.wall_seconds >= COMMIT_EVERY)
        t_done = time.perf_counter()
        tm = self.timings
        tm["ask"] += t_ask - t0
        tm["evaluate"] += t_told - t_eval
        tm["tell"] += t_ranked - t_told
        tm["checkpoint"] += t_pickled - t_ranked
        tm["commit"] += t_done - t_pickled
        stats = GenerationStats(g, hv, len(cands) - reused, failed, reused, len(pop),
                                int(np.sum(rank == 0)), rec.wall_seconds)
        self._live = {}
        self._write_status(g + 1, "running", force=True, hv=hv)
        self.observer.generation_done(stats)
        return True

    # --- helpers ----------------------------------------------------------------------------------
    def _commit(self, *, force: bool) -> None:
        if self._pending and (force or time.perf_counter() - self._committed_at >= COMMIT_EVERY):
            self.store.commit_generations(self.run_id, self._pending)
            self._pending.clear()
            self._committed_at = time.perf_counter()

    def _commit_on_the_way_out(self) -> None:
        """Keep the whole generations already done when the run is interrupted."""
        try:
            self._commit(force=True)
        except Exception:  # noqa: BLE001 - the error being raised is the one to report
            self._pending.clear()

    def _stage(self, generation: int, cand: Candidate, outcome: Outcome) -> None:
        self._stage_buf.append((generation, cand, outcome))
        now = time.monotonic()
        if outcome.wall_seconds >= STAGE_WORTH or now - self._staged_at >= STAGE_EVERY:
            self.store.stage([(self.run_id, g, c.id, c.hash, pickle.dumps(o, protocol=5))
                              for g, c, o in self._stage_buf])
            self._stage_buf.clear()
            self._staged_any = True
            self._staged_at = time.monotonic()
            self.timings["stage"] += self._staged_at - now

    def _score(self, outcome: Outcome) -> Scored:
        return score(outcome.status, outcome.metrics, self.resolved.objectives, self.resolved.constraints)

    def _keep_trajectory(self, outcome: Outcome) -> None:
        from evolve.trajectories import unpack_bundle

        if outcome.bundle is None:
            return
        outcome.result_bytes = len(outcome.bundle)
        try:
            outcome.trajectory = unpack_bundle(outcome.bundle, self.run_dir, outcome.individual_id)
        except OSError as exc:
            self._event("trajectory_lost", f"{outcome.individual_id}: {exc}", individual_id=outcome.individual_id)
        outcome.bundle = None  # kept on disk now; the store holds the path

    def _individual_row(self, c: Candidate, g: int) -> tuple[Any, ...]:
        return (self.run_id, c.id, self.species.name, g, c.hash, c.canonical or self.species.canonical_json(c.genome),
                list(c.parents), c.seed, c.origin)

    def _evaluation_row(self, c: Candidate, g: int, o: Outcome, s: Scored) -> tuple[Any, ...]:
        return (self.run_id, c.id, g, o.status, s.values, metrics_json(o.metrics),
                [float(x) for x in s.G[1:]], s.CV, bool(s.CV <= 0), s.note, float(o.wall_seconds),
                o.node or "", o.trajectory, o.error, int(o.attempts), int(o.result_bytes))

    def _event(self, kind: str, message: str, *, generation: int | None = None,
               individual_id: str | None = None) -> None:
        self.store.event(self.run_id, kind, message, generation=generation, individual_id=individual_id)
        self.observer.event(kind, message)

    def pool_event(self, kind: str, message: str, individual_id: str | None) -> None:
        self._event(kind, message, individual_id=individual_id)

    def _write_status(self, generation: int, state: str, *, force: bool = False,
                      hv: float | None = None) -> None:
        """A JSON snapshot for `evolve status` while the store is locked by this driver."""
        now = time.monotonic()
        if not force and now - self._status_written < 0.5:
            return
        self._status_written = now
        data = {"run_id": self.run_id, "pid": os.getpid(), "state": state, "generation": generation,
                "generations": self.cfg.generations, "species": self.species.name,
                "updated_at": datetime.now(UTC).isoformat(timespec="seconds"), **self._live}
        if hv is not None:
            data["hypervolume"] = hv
        tmp = self.run_dir / (STATUS_FILE + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.run_dir / STATUS_FILE)


# --- one call that does it all ------------------------------------------------------------------
def run_evolution(resolved: Resolved, run_id: str, run_dir: Path, *, address: str | None = None,
                  observer: Observer | None = None) -> RunSummary:
    """Connect to Ray, start the evaluator actors, run the generations; tidy up afterwards."""
    from evolve.actors import EvaluatorPool
    from evolve.cluster import connect

    cfg = resolved.config
    with Store.open(run_dir) as store:
        engine = Engine(resolved, run_id, run_dir, store, observer)
        with connect(address, num_cpus=cfg.ray.num_cpus) as cluster:
            n_actors = cfg.evaluation.actors or max(1, cluster.cpus)
            if cluster.mode == "embedded" and n_actors > cluster.cpus:
                raise EvolveError(f"evaluation.actors is {n_actors} but the embedded Ray has {cluster.cpus} CPU(s); "
                                  "lower evaluation.actors or raise ray.num_cpus")
            pool = EvaluatorPool(resolved.species, run_id=run_id, n_actors=n_actors,
                                 timeout=cfg.evaluation.timeout, retries=cfg.evaluation.retries,
                                 grace=cfg.evaluation.grace, on_event=engine.pool_event)
            try:
                pool.wait_ready()
                return engine.run(pool, cluster)
            finally:
                pool.close()
