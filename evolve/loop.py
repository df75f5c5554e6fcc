"""The evolution loop: pymoo ask/tell around Ray evaluations, one store commit per generation.

    state  = checkpoint or fresh(seed)         # pymoo algorithm + RNG for individual seeds
    repeat:                                    # for every species of the run, side by side:
        off = algorithm.ask()                  # deterministic given the state
        name them g{gen}-{k} ({species}-g{gen}-{k} in a run of several), draw their seeds
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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from evolve.config import Resolved, SpeciesPart
from evolve.errors import EvolveError
from evolve.store import GenerationRecord, Store, metrics_json
from populations.base import Candidate, EvalItem, Outcome, Product
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
    species: str = ""


@dataclass
class RunSummary:
    run_id: str
    run_dir: Path
    status: str  # finished | stalled
    generations: int
    hypervolume: list[float | None] = field(default_factory=list)  # the first species'
    timings: dict[str, float] = field(default_factory=dict)  # seconds per engine phase, this session
    hypervolumes: dict[str, list[float | None]] = field(default_factory=dict)  # per species


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


def _dumps(state: EngineState | dict[str, EngineState]) -> bytes:
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
    lanes = resolved.lanes
    several = len(lanes) > 1
    objectives: list[dict[str, Any]] = []  # runs.objectives: the one species' (as ever), or
    constraints: list[dict[str, Any]] = []  # everyone's, each marked with its species
    parts = []
    for p, sc in zip(lanes, cfg.species_list):
        mark = {"species": p.name} if several else {}
        objs = [{"metric": o.metric, "direction": o.direction, "ref": o.ref} for o in p.objectives]
        cons = [{"metric": c.metric, "le": c.le, "ge": c.ge, "eq": c.eq} for c in p.constraints]
        objectives += [{**o, **mark} for o in objs]
        constraints += [{**c, **mark} for c in cons]
        parts.append({"species": p.name, "population": p.population.size, "params": sc.params,
                      "objectives": objs, "constraints": cons})
    with Store.open(run_dir, create=True) as store:
        store.create_run(
            run_id=run_id, name=cfg.name, species=",".join(p.name for p in lanes), seed=cfg.seed,
            generations=cfg.generations, objectives=objectives, constraints=constraints,
            config=cfg.to_json_data(), versions=versions(), parts=parts)
        sizes = ", ".join(f"{p.name} {p.population.size}" for p in lanes) if several else str(lanes[0].population.size)
        store.event(run_id, "run_created", f"run {run_id} created (species {', '.join(p.name for p in lanes)}, "
                                           f"{cfg.generations} generations of {sizes})")
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
@dataclass
class Lane:
    """One species of the run: its settings, its pymoo state, its actors."""

    part: SpeciesPart
    index: int
    prefix: str  # of its individual ids: "" in a one-species run, else "<species>-"
    state: EngineState | None = None
    pool: Any = None

    @property
    def key(self) -> str:
        return self.part.name

    @property
    def species(self) -> Any:
        return self.part.species


class Engine:
    """Runs the generations of one run against a store and its actor pools (one per species).

    Every species advances one generation at a time, together: generation g of each is asked
    for, evaluated on its own actors at the same time as the others, told, and all are
    committed in one transaction. A species that learns from another (`Species.consumes`)
    gets, with every item of generation g, its `context` of what the others produced in
    generations before g (committed, so a resumed run hands it the same corpus).
    """

    def __init__(self, resolved: Resolved, run_id: str, run_dir: Path, store: Store,
                 observer: Observer | None = None) -> None:
        self.resolved = resolved
        self.cfg = resolved.config
        self.species = resolved.species  # the first (in a one-species run, the only) species
        several = len(resolved.lanes) > 1 or self.cfg.several
        self.lanes = [Lane(part, k, f"{part.name}-" if several else "") for k, part in enumerate(resolved.lanes)]
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
    def fresh_state(self, lane: Lane | None = None) -> EngineState:
        """Generation 0 of a species: lane 0 is seeded by the run seed itself (so a species
        evolves as it would alone), the others by seeds drawn from it."""
        from evolve.selection import make_algorithm

        lane = lane or self.lanes[0]
        cfg, part = self.cfg, lane.part
        seed = cfg.seed if lane.index == 0 else int(np.random.SeedSequence([cfg.seed, lane.index]).generate_state(1)[0])
        algorithm = make_algorithm(
            part.algorithm.name, part.species, pop_size=part.population.size,
            n_offsprings=part.population.offspring, n_obj=len(part.objectives),
            n_ieq_constr=1 + len(part.constraints), generations=cfg.generations,
            seed=seed, partitions=part.algorithm.partitions)
        entropy = [cfg.seed, 0x5EED] + ([lane.index] if lane.index else [])
        seed_rng = np.random.default_rng(np.random.SeedSequence(entropy))
        return EngineState(algorithm, seed_rng, 0)

    @property
    def generation(self) -> int:
        """The next generation to ask for (the same for every species)."""
        state = self.lanes[0].state
        return 0 if state is None else state.generation

    def load_state(self) -> EngineState:
        """The last checkpoint (or a fresh state), brought up to the last committed generation."""
        found = self.store.checkpoint(self.run_id)
        if found is None:
            states = {lane.key: self.fresh_state(lane) for lane in self.lanes}
        else:
            generation, blob, saved = found
            if saved.get("pymoo") != self._versions["pymoo"]:
                raise EvolveError(f"run {self.run_id} was checkpointed with pymoo {saved.get('pymoo')}, "
                                  f"this is pymoo {self._versions['pymoo']}; resume it with the same installation")
            loaded = pickle.loads(blob)
            # a one-species run checkpoints its EngineState alone; a run of several, a dict of them
            states = loaded if isinstance(loaded, dict) else {self.lanes[0].key: loaded}
            if sorted(states) != sorted(lane.key for lane in self.lanes):
                raise EvolveError(f"run {self.run_id}: its checkpoint holds species {', '.join(sorted(states))}, "
                                  f"the config {', '.join(lane.key for lane in self.lanes)}")
            if any(s.generation != generation for s in states.values()):
                raise EvolveError(f"run {self.run_id}: checkpoint is inconsistent "
                                  f"(generation {[s.generation for s in states.values()]} vs {generation})")
        for lane in self.lanes:
            lane.state = states[lane.key]
        last = self.store.last_generation(self.run_id)
        t = time.perf_counter()
        replayed = 0
        while last is not None and self.generation <= last:
            self._replay()
            replayed += 1
        self.timings["replay"] += time.perf_counter() - t
        if replayed:
            g = self.generation
            self._event("replayed", f"generations {g - replayed}..{g - 1} replayed "
                                    "from the store (no evaluation repeated)", generation=g)
        return self.lanes[0].state  # type: ignore[return-value]

    def _checkpoint(self) -> bytes:
        states = {lane.key: lane.state for lane in self.lanes if lane.state is not None}
        return _dumps(states if len(self.lanes) > 1 else states[self.lanes[0].key])

    def _ask(self, lane: Lane) -> tuple[Any, list[Candidate]]:
        """The next offspring, named and seeded; (None, []) when variation found nothing new."""
        state = lane.state
        assert state is not None
        g = state.generation
        off = state.algorithm.ask()
        if off is None or len(off) == 0:
            return None, []
        cands: list[Candidate] = [ind.X[0] for ind in off]
        # one draw for all: the same numbers, in the same order, as one draw per individual
        seeds = state.seed_rng.integers(0, 2**64, size=len(cands), dtype=np.uint64).tolist()
        for k, (c, seed) in enumerate(zip(cands, seeds)):
            c.id = lane.prefix + individual_id(g, k)
            c.seed = seed
        return off, cands

    def _tell(self, lane: Lane, off: Any, scored: list[Scored]) -> None:
        from evolve.selection import tell

        state = lane.state
        assert state is not None
        F = np.array([s.F for s in scored])  # (n, n_obj) minimisation form
        G = np.array([s.G for s in scored])  # (n, 1 + n_constr)
        tell(state.algorithm, off, F, G)
        state.algorithm.off = None  # not needed by the next ask; keeps checkpoints small
        state.generation += 1

    def _replay(self) -> None:
        """Redo a committed generation's ask/tell from the store, checking it is the same."""
        g = self.generation
        for lane in self.lanes:
            off, cands = self._ask(lane)
            rows = self.store.query(
                """SELECT i.individual_id, i.hash, i.seed, e.status, e.metrics
                   FROM individuals i JOIN evaluations e USING (run_id, individual_id)
                   WHERE i.run_id = ? AND i.generation = ? AND i.species = ? ORDER BY i.individual_id""",
                [self.run_id, g, lane.key])
            mine = [(c.id, c.hash, c.seed) for c in cands]
            stored = [(r[0], r[1], int(r[2])) for r in rows]
            if mine != stored:
                first = next((f"{a} != {b}" for a, b in zip(mine, stored) if a != b), f"{len(mine)} vs {len(stored)}")
                raise EvolveError(f"run {self.run_id}: replaying generation {g} does not give the stored "
                                  f"individuals ({first}); this installation cannot resume it")
            part = lane.part
            self._tell(lane, off, [score(r[3], json.loads(r[4]), part.objectives, part.constraints) for r in rows])

    # --- the loop -------------------------------------------------------------------------------
    def run(self, pool: Any, cluster: Any = None) -> RunSummary:
        """Run to the end; `pool` evaluates the one species, or is a list of pools (one per
        species, in config order)."""
        pools = list(pool) if isinstance(pool, (list, tuple)) else [pool]
        if len(pools) != len(self.lanes):
            raise EvolveError(f"{len(pools)} actor pool(s) for {len(self.lanes)} species")
        for lane, p in zip(self.lanes, pools):
            lane.pool = p
        self.load_state()
        start = self.generation
        found = self.store.query("SELECT max(generation) FROM staged WHERE run_id = ?", [self.run_id])
        self._staged_until = -1 if found[0][0] is None else int(found[0][0])
        kind = "run_resumed" if start > 0 or self.store.staged(self.run_id, start) else "run_started"
        actors = " + ".join(("evaluation in the driver" if getattr(p, "role", "") == "driver"
                             else f"{p.size} {getattr(p, 'role', 'evaluator')} actor(s)")
                            + (f" ({lane.key})" if len(self.lanes) > 1 else "") for lane, p in zip(self.lanes, pools))
        self._event(kind, f"{kind.replace('_', ' ')} at generation {start} with {actors}", generation=start)
        self.store.set_status(self.run_id, "running")
        self.observer.started(self.run_id, start, self.cfg.generations, sum(p.size for p in pools), cluster)
        status = "finished"
        try:
            while self.generation < self.cfg.generations:
                if not self._generation():
                    status = "stalled"
                    break
            self._commit(force=True)
        except BaseException:
            self._commit_on_the_way_out()
            self.store.set_status(self.run_id, "interrupted")
            self._write_status(self.generation, "interrupted", force=True)
            raise
        self.store.set_status(self.run_id, "finished")
        self._event("run_finished", f"run {status} after {self.generation} generation(s)",
                    generation=self.generation - 1)
        self._write_status(self.generation, "finished", force=True)
        hvs = {lane.key: [r[0] for r in self.store.query(
            "SELECT hypervolume FROM generations WHERE run_id = ? AND species = ? ORDER BY generation",
            [self.run_id, lane.key])] for lane in self.lanes}
        return RunSummary(self.run_id, self.run_dir, status, self.generation, hvs[self.lanes[0].key],
                          dict(self.timings), hvs)

    def _generation(self) -> bool:
        from evolve.selection import hypervolume, rank_and_crowding

        g = self.generation
        t0 = time.perf_counter()
        asked: list[tuple[Lane, Any, list[Candidate]]] = []
        for lane in self.lanes:
            off, cands = self._ask(lane)
            if off is None:
                self._event("stalled", f"{lane.key}: variation produced no new individual (all duplicates); "
                                       "stopping", generation=g)
                return False
            asked.append((lane, off, cands))
        t_ask = time.perf_counter()

        outcomes: dict[str, Outcome] = {}
        scores: dict[str, Scored] = {}
        staged = self.store.staged(self.run_id, g) if g <= self._staged_until else {}
        self._staged_any = bool(staged)
        lane_of: dict[str, Lane] = {}
        by_id: dict[str, Candidate] = {}
        for lane, _, cands in asked:
            for c in cands:
                lane_of[c.id], by_id[c.id] = lane, c
        for ind_id, (hash_, blob) in staged.items():
            match = by_id.get(ind_id)
            if match is not None and match.hash == hash_:
                outcomes[ind_id] = pickle.loads(blob)
        reused = len(outcomes)
        if reused:
            self._event("reused", f"{reused} evaluation(s) staged before the restart are kept", generation=g)
        work = []
        for lane, _, cands in asked:
            context = self._context(lane, g) if lane.species.consumes else None
            work.append((lane, [EvalItem(c.id, c.genome, c.hash, c.seed, context)
                                for c in cands if c.id not in outcomes]))
        size = sum(len(cands) for _, _, cands in asked)
        self.observer.generation_started(g, size, reused)
        self._live = {"evaluated": reused, "failed": 0, "size": size}
        self._write_status(g, "running")

        self._staged_at = time.monotonic()
        observe = type(self.observer).evaluated is not Observer.evaluated  # skip a no-op per outcome
        t_eval = time.perf_counter()
        try:
            for outcome in self._evaluate(work):
                self._keep_results(outcome)
                cand, lane = by_id[outcome.individual_id], lane_of[outcome.individual_id]
                self._stage(g, cand, outcome)
                outcomes[cand.id] = outcome
                s = scores[cand.id] = self._score(lane, outcome)
                self._live["evaluated"] += 1
                self._live["failed"] += outcome.status != "ok"
                if outcome.status != "ok":
                    self._event("evaluation_" + outcome.status, f"{cand.id}: {outcome.error or outcome.status}",
                                generation=g, individual_id=cand.id)
                if observe:
                    self.observer.evaluated(outcome, s.CV <= 0)
                self._write_status(g, "running")
        except KeyboardInterrupt:  # an orderly stop keeps every evaluation that landed
            self._flush_stage()
            raise
        self._stage_buf.clear()  # the generation commit below stores them all
        t_told = time.perf_counter()

        records, all_stats = [], []
        last = g + 1 >= self.cfg.generations
        for lane, off, cands in asked:
            scored = [scores.get(c.id) or self._score(lane, outcomes[c.id]) for c in cands]
            self._tell(lane, off, scored)
            pop = lane.state.algorithm.pop  # type: ignore[union-attr]
            popF = pop.get("F").astype(float)
            popCV = pop.get("CV")[:, 0].astype(float)
            rank, crowding = rank_and_crowding(popF, popCV)
            hv = hypervolume(popF, popCV, lane.part.ref_point)
            n_reused = sum(c.id not in scores for c in cands)
            failed = sum(outcomes[c.id].status != "ok" for c in cands)
            records.append(GenerationRecord(
                generation=g,
                individuals=[self._individual_row(lane, c, g) for c in cands],
                evaluations=[self._evaluation_row(c, g, outcomes[c.id], s) for c, s in zip(cands, scored)],
                fronts=[(self.run_id, g, ind.X[0].id, int(r), None if np.isnan(cd) else float(cd))
                        for ind, r, cd in zip(pop, rank, crowding)],
                hypervolume=hv, evaluated=len(cands) - n_reused, failed=failed, reused=n_reused,
                wall_seconds=time.perf_counter() - t0, staged=self._staged_any, versions=self._versions,
                species=lane.key))
            all_stats.append(GenerationStats(g, hv, len(cands) - n_reused, failed, n_reused, len(pop),
                                             int(np.sum(rank == 0)), records[-1].wall_seconds, lane.key))
        t_ranked = time.perf_counter()
        if last or t_ranked - self._checkpointed_at >= self.checkpoint_every:
            records[-1].checkpoint = self._checkpoint()  # every species' state, after this generation
            self._checkpointed_at = time.perf_counter()
        t_pickled = time.perf_counter()
        self._pending.extend(records)
        self._commit(force=last or records[-1].wall_seconds >= COMMIT_EVERY)
        t_done = time.perf_counter()
        tm = self.timings
        tm["ask"] += t_ask - t0
        tm["evaluate"] += t_told - t_eval
        tm["tell"] += t_ranked - t_told
        tm["checkpoint"] += t_pickled - t_ranked
        tm["commit"] += t_done - t_pickled
        self._live = {}
        # every generation of towers; cheap ones at most every half second, like the rest
        self._write_status(g + 1, "running", force=records[-1].wall_seconds >= STAGE_WORTH,
                           hv=all_stats[0].hypervolume)
        for stats in all_stats:
            self.observer.generation_done(stats)
        return True

    def _evaluate(self, work: list[tuple[Lane, list[EvalItem]]]) -> Iterator[Outcome]:
        if len(work) == 1:  # any pool with `evaluate(items)` will do for one species
            lane, items = work[0]
            yield from lane.pool.evaluate(items)
            return
        from evolve.actors import evaluate_together

        for _, outcome in evaluate_together([(lane.pool, items) for lane, items in work]):
            yield outcome

    def _context(self, lane: Lane, g: int) -> Any:
        """What the species makes of the other species' products before generation g; shipped
        once through Ray's object store when Ray runs here."""
        self._commit(force=True)  # products of earlier generations must be in the store
        rows = self.store.query(
            """SELECT i.species, e.individual_id, e.generation, e.trajectory
               FROM evaluations e JOIN individuals i USING (run_id, individual_id)
               WHERE e.run_id = ? AND e.generation < ? AND e.trajectory IS NOT NULL
                 AND list_contains(?, i.species)
               ORDER BY e.generation, e.individual_id""", [self.run_id, g, list(lane.species.consumes)])
        products = [Product(r[0], r[1], int(r[2]), (self.run_dir / r[3]).resolve()) for r in rows
                    if (self.run_dir / r[3]).is_dir()]
        context = lane.species.context(g, products)
        summary = getattr(context, "summary", None)
        if summary is not None:
            used = getattr(context, "sources", [])
            shown = ", ".join(used[:4]) + (f", … ({len(used)})" if len(used) > 4 else "")
            self._event("corpus", f"{lane.key} generation {g}: "
                                  + ", ".join(f"{k.removeprefix('corpus_')} {v}" for k, v in summary.items())
                                  + (f"; from {shown}" if used else ""), generation=g)
        import ray

        return ray.put(context) if ray.is_initialized() else context

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
        if outcome.wall_seconds >= STAGE_WORTH or time.monotonic() - self._staged_at >= STAGE_EVERY:
            self._flush_stage()

    def _flush_stage(self) -> None:
        """Stage what has landed and is still only buffered (also on an interrupt)."""
        if not self._stage_buf:
            return
        now = time.monotonic()
        self.store.stage([(self.run_id, g, c.id, c.hash, pickle.dumps(o, protocol=5))
                          for g, c, o in self._stage_buf])
        self._stage_buf.clear()
        self._staged_any = True
        self._staged_at = time.monotonic()
        self.timings["stage"] += self._staged_at - now

    def _score(self, lane: Lane, outcome: Outcome) -> Scored:
        return score(outcome.status, outcome.metrics, lane.part.objectives, lane.part.constraints)

    def _keep_results(self, outcome: Outcome) -> None:
        """Unpack a trajectory bundle and write artifacts under the run directory (the store
        and the staged outcome keep their paths, not their bytes)."""
        if outcome.bundle is None and not getattr(outcome, "artifacts", None):
            return  # nothing to keep (numeric): skip the rest, once per outcome
        from evolve.trajectories import keep_artifacts, unpack_bundle

        if outcome.bundle is not None:
            outcome.result_bytes = len(outcome.bundle)
            try:
                outcome.trajectory = unpack_bundle(outcome.bundle, self.run_dir, outcome.individual_id)
            except OSError as exc:
                self._event("trajectory_lost", f"{outcome.individual_id}: {exc}", individual_id=outcome.individual_id)
            outcome.bundle = None
        files = getattr(outcome, "artifacts", None)
        if files:
            outcome.result_bytes += sum(len(b) for b in files.values())
            try:
                outcome.artifact = keep_artifacts(files, self.run_dir, outcome.individual_id)
            except OSError as exc:
                self._event("artifact_lost", f"{outcome.individual_id}: {exc}", individual_id=outcome.individual_id)
            outcome.artifacts = None

    def _individual_row(self, lane: Lane, c: Candidate, g: int) -> tuple[Any, ...]:
        return (self.run_id, c.id, lane.key, g, c.hash, c.canonical or lane.species.canonical_json(c.genome),
                list(c.parents), c.seed, c.origin)

    def _evaluation_row(self, c: Candidate, g: int, o: Outcome, s: Scored) -> tuple[Any, ...]:
        cv = s.CV  # a numpy reduction each time it is read
        return (self.run_id, c.id, g, o.status, s.values, metrics_json(o.metrics),
                s.G[1:].tolist(), cv, cv <= 0, s.note, float(o.wall_seconds),
                o.node or "", o.trajectory, o.error, int(o.attempts), int(o.result_bytes),
                o.artifact, o.isolation)

    def _event(self, kind: str, message: str, *, generation: int | None = None,
               individual_id: str | None = None) -> None:
        self.store.event(self.run_id, kind, message, generation=generation, individual_id=individual_id)
        self.observer.event(kind, message)

    def pool_event(self, kind: str, message: str, individual_id: str | None) -> None:
        self._event(kind, message, individual_id=individual_id)

    def pool_events(self, species: str) -> Callable[[str, str, str | None], None]:
        """The event sink of one species' pool (its name leads the message in a run of several)."""
        if len(self.lanes) == 1:
            return self.pool_event
        return lambda kind, message, ind: self._event(kind, f"{species}: {message}", individual_id=ind)

    def _write_status(self, generation: int, state: str, *, force: bool = False,
                      hv: float | None = None) -> None:
        """A JSON snapshot for `evolve status` while the store is locked by this driver."""
        now = time.monotonic()
        if not force and now - self._status_written < 0.5:
            return
        self._status_written = now
        data = {"run_id": self.run_id, "pid": os.getpid(), "state": state, "generation": generation,
                "generations": self.cfg.generations, "species": ",".join(lane.key for lane in self.lanes),
                "updated_at": datetime.now(UTC).isoformat(timespec="seconds"), **self._live}
        if hv is not None:
            data["hypervolume"] = hv
        tmp = self.run_dir / (STATUS_FILE + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.run_dir / STATUS_FILE)


# --- one call that does it all ------------------------------------------------------------------
def run_evolution(resolved: Resolved, run_id: str, run_dir: Path, *, address: str | None = None,
                  observer: Observer | None = None) -> RunSummary:
    """Connect to Ray, start every species' actors (trainer actors where the species trains
    models; none for a species evaluated in the driver, `evaluation.actors: 0`), run the
    generations; tidy up afterwards. When every species is evaluated in the driver and no
    cluster is named, Ray is not started at all."""
    from contextlib import nullcontext

    from evolve.actors import DriverPool
    from evolve.cluster import connect
    from evolve.trainers import make_pools, placement

    cfg = resolved.config
    in_driver = [part.evaluation.actors == 0 for part in resolved.lanes]
    need_ray = not all(in_driver) or bool(address)
    with Store.open(run_dir) as store:
        engine = Engine(resolved, run_id, run_dir, store, observer)
        with (connect(address, num_cpus=cfg.ray.num_cpus) if need_ray else nullcontext(None)) as cluster:
            remote = [part for part, inline in zip(resolved.lanes, in_driver) if not inline]
            made = iter(make_pools(remote, run_id=run_id, cpus=cluster.cpus, gpus=cluster.gpus,
                                   embedded=cluster.mode == "embedded", on_event=engine.pool_events)
                        if remote else [])
            pools: list[Any] = [DriverPool(part.species, run_id=run_id, timeout=part.evaluation.timeout)
                                if inline else next(made) for part, inline in zip(resolved.lanes, in_driver)]
            try:
                for lane, pool in zip(engine.lanes, pools):
                    pool.wait_ready()
                    if pool.role == "driver":
                        engine._event("actors_placed", f"{lane.key}: evaluated in the driver (evaluation.actors: 0)")
                    elif pool.role != "evaluator" or len(pools) > 1:
                        engine._event("actors_placed", f"{lane.key}: {pool.size} {pool.role} actor(s) on "
                                                       f"{placement(pool.actor_options)}")
                return engine.run(pools if len(pools) > 1 else pools[0], cluster)
            finally:
                for pool in pools:
                    pool.close()
