"""The evolution loop: pymoo ask/tell around the species' pools, one store commit per generation.

    state = checkpoint or fresh(seed)     # per species: pymoo algorithm + RNG for individual seeds
    repeat, every species side by side:
        ask      off = algorithm.ask(); name them g{gen}-{k} ({species}-g{gen}-{k} in a run
                 of several), draw their seeds
        evaluate reuse staged evaluations, evaluate the rest on the pools (staging each as it lands)
        tell     algorithm.tell(off with F, G); fronts and hypervolume of the survivors
        commit   individuals + evaluations + fronts + generation (+ checkpoint), one transaction

A killed driver resumes from the last checkpoint (a pickled `EngineState`, written as
`Cadence` says, and after the last generation). The generations committed after it are
replayed: `ask()` gives the same offspring again — checked against the stored hashes and
seeds — and `tell()` gets their stored objectives, so nothing is evaluated twice. In the
running generation, the individuals already evaluated come from the staging table and the
rest are evaluated now. No evaluation is lost, none is stored twice, and the resumed run is
the run an uninterrupted driver would have made.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from evolve.budget import Spend, metric_tokens, reached, sum_tokens
from evolve.cadence import Cadence
from evolve.calibrate import normalise, selected
from evolve.cascade import GATED, STAGE_SUFFIX, Saving, passes
from evolve.config import ENDPOINTS, Resolved, SpeciesPart
from evolve.errors import EvolveError
from evolve.evaluated import Evaluated, receive
from evolve.held_out import TRAIN, VALIDATION, summarise, task_dict, task_row
from evolve.islands import due, island_prefix, migrate, overall
from evolve.pools import Pool, evaluate_together
from evolve.replicates import MEMBER, aggregate, natural, replicate_id, replicate_seed, sampled, spread, standing
from evolve.runs import versions
from evolve.store import (
    EvaluationRow,
    FrontRow,
    GenerationRecord,
    GenerationRow,
    HeldOutRow,
    IndividualRow,
    IslandFrontRow,
    IslandRow,
    MigrationRow,
    ProposalRow,
    ReplicateRow,
    SavedState,
    SpendRow,
    StagedRow,
    StageRow,
    StandingRow,
    Store,
    TaskResultRow,
    metrics_json,
)
from populations.base import Candidate, EvalItem, HeldOut, Outcome, Product
from populations.objectives import Scored, score

if TYPE_CHECKING:
    from pymoo.core.algorithm import Algorithm  # type: ignore[import-untyped]
    from pymoo.core.population import Population  # type: ignore[import-untyped]

    from evolve.cluster import ClusterInfo

STATUS_FILE = "status.json"
# Results that say something about the genome (ok, or invalid: it broke a rule), unlike a
# failure or a timeout, which may be the node's: only those serve a duplicate.
REUSABLE = ("ok", "invalid")


@dataclass
class SpeciesState:
    """What one species needs to go on: pymoo's algorithm after the last tell, and the RNG
    that draws each individual's 64-bit seed."""

    algorithm: Algorithm
    seed_rng: np.random.Generator


@dataclass
class EngineState:
    """Everything `--resume` needs besides the store's rows (pickled as the checkpoint)."""

    generation: int  # the next generation to ask for, the same for every species
    species: dict[str, SpeciesState]  # by species name


@dataclass
class RunSummary:
    run_id: str
    run_dir: Path
    status: str  # finished | stalled | stopped (a budget was reached)
    generations: int
    hypervolumes: dict[str, list[float | None]]  # per species, per generation
    timings: dict[str, float] = field(default_factory=dict)  # seconds per engine phase, this session
    stopped_by: str | None = None  # the budget reached, e.g. "evaluations 36 of 30"

    @property
    def hypervolume(self) -> list[float | None]:
        """The first species' (in a run of one species, the run's)."""
        return next(iter(self.hypervolumes.values()))


class Observer:
    """Hooks for progress displays; every method is optional."""

    def started(self, run_id: str, start_generation: int, generations: int, n_actors: int,
                cluster: ClusterInfo | None) -> None: ...

    def generation_started(self, generation: int, size: int, reused: int) -> None: ...

    def evaluated(self, result: Evaluated, feasible: bool) -> None: ...

    def generation_done(self, stats: GenerationRow) -> None: ...

    def event(self, kind: str, message: str) -> None: ...


def individual_id(generation: int, k: int) -> str:
    return f"g{generation:03d}-{k:03d}"


# --- the engine ----------------------------------------------------------------------------
@runtime_checkable
class SummarisedContext(Protocol):
    """A species' context that says what it holds (the accordion's corpus): the engine
    records it as a `corpus` event."""

    summary: Mapping[str, object]
    sources: Sequence[str]  # the products it was made from


@dataclass
class Lane:
    """One population of the run: a species (or one island of it), its settings and where
    its individual ids start."""

    part: SpeciesPart
    index: int  # of the species, in config order
    prefix: str  # of its individual ids: "" in a run of one species, else "<species>-"; islands: "i<k>-"
    island: int | None = None  # with islands.count > 1

    @property
    def species(self) -> str:
        return self.part.name

    @property
    def key(self) -> str:
        """Its state's name: the species, or `species@island`."""
        return self.part.name if self.island is None else f"{self.part.name}@{self.island}"


@dataclass
class Asked:
    """One species' offspring of a generation: pymoo's population and its candidates."""

    lane: Lane
    off: Population
    cands: list[Candidate]
    proposals: list[ProposalRow] = field(default_factory=list)  # reflective mutation's, for these
    variation: dict[str, int] = field(default_factory=dict)  # what variation did (`Species.take_variation`)


class Engine:
    """Runs the generations of one run against a store and one pool per species.

    Every species advances one generation at a time, together: generation g of each is asked
    for, evaluated on its own pool at the same time as the others, told, and all are
    committed in one transaction. A species that learns from another (`Species.consumes`)
    gets, with every item of generation g, its `context` of what the others produced in
    generations before g (committed, so a resumed run hands it the same corpus).
    """

    state: EngineState  # set by `run`
    pools: list[Pool]  # set by `run`: one per lane

    def __init__(self, resolved: Resolved, run_id: str, run_dir: Path, store: Store,
                 observer: Observer | None = None, cadence: Cadence | None = None) -> None:
        self.cfg = resolved.config
        prefix = "{}-" if self.cfg.several else ""
        islands = self.cfg.islands.count
        self.lanes = ([Lane(part, k, prefix.format(part.name)) for k, part in enumerate(resolved.parts)]
                      if islands == 1 else
                      [Lane(part, k, prefix.format(part.name) + island_prefix(j), j)
                       for k, part in enumerate(resolved.parts) for j in range(islands)])
        self.species = list(dict.fromkeys(lane.species for lane in self.lanes))
        self.run_id = run_id
        self.run_dir = run_dir
        self.store = store
        self.observer = observer or Observer()
        self.cadence = cadence or Cadence()
        self.timings = dict.fromkeys(("ask", "evaluate", "tell", "replicate", "validate", "checkpoint", "commit",
                                       "stage", "replay"), 0.0)
        self._versions = versions()
        self._live: dict[str, int] = {}  # this generation's counts, for the status file
        self._staged_until = -1  # staged rows (from before a restart) exist up to this generation
        self._to_stage: list[tuple[int, Candidate, Evaluated]] = []  # landed, not yet staged
        self._pending: list[GenerationRecord] = []  # whole generations not yet committed
        self._checkpoint: SavedState | None = None  # taken, not yet committed
        # results by (genome hash, context): a genome is evaluated once per context, whoever carries it
        self._results: dict[tuple[str, str], Evaluated] = {}
        # validation results by genome hash: a genome is validated once, whoever carries it
        self._validated: dict[str, tuple[HeldOutRow, list[TaskResultRow]]] = {}
        self._train_tasks: dict[str, list[TaskResultRow]] = {}  # stored before this session, by individual
        self._validated_ids: set[str] = set()  # individuals with a validation result (reused ones too)
        self.limits = self.cfg.budget.limits  # the budget in force (a resumed run's may be raised)
        self.spent = Spend()  # the run's, every session: loaded by `run`
        self._members: dict[str, set[str]] = {}  # per species: the reported front under the guardrail
        self._nodes: dict[str, set[str]] = {}  # re-evaluated species: the nodes each individual's samples ran on
        self._stages: dict[str, StageRow] = {}  # this generation's cheap stages, by individual
        self._saving: dict[str, Saving] = {}  # per lane: full evaluation seconds so far (evolve.cascade)

    @property
    def generation(self) -> int:
        """The next generation to ask for."""
        return self.state.generation

    # --- the run ------------------------------------------------------------------------------
    def run(self, pools: Sequence[Pool], cluster: ClusterInfo | None = None) -> RunSummary:
        """Run to the end; `pools` evaluate the species, one each, in config order (a
        species' islands share its pool)."""
        if len(pools) != len(self.species):
            raise EvolveError(f"{len(pools)} pool(s) for {len(self.species)} species")
        self.pools = [pools[lane.index] for lane in self.lanes]
        # what earlier sessions stored of the search's task samples: replay learns from them
        # again, and their results may serve a duplicate
        self._train_tasks = self.store.task_results(self.run_id, TRAIN)
        self.state = self._load_state()
        saved = self.store.spend(self.run_id)
        if saved is not None:
            self.spent = Spend(saved.evaluations, saved.wall_seconds, dict(json.loads(saved.expert_tokens)))
        self._results = self._stored_results()
        self._validated = self._stored_validation()
        self._validated_ids = {r[0] for r in self.store.query(
            "SELECT individual_id FROM held_out WHERE run_id = ? AND split = ?", [self.run_id, VALIDATION])}
        start = self.generation
        last_staged = self.store.last_staged(self.run_id)
        self._staged_until = -1 if last_staged is None else last_staged
        kind = "run_resumed" if start > 0 or last_staged is not None else "run_started"
        workers = " + ".join(("evaluation in the driver" if p.size == 0 else f"{p.size} {p.role} actor(s)")
                             + f" ({name})" for name, p in zip(self.species, pools))
        self._event(kind, f"{kind.replace('_', ' ')} at generation {start} with {workers}", generation=start)
        self.store.set_status(self.run_id, "running")
        self.observer.started(self.run_id, start, self.cfg.generations, sum(p.size for p in pools), cluster)
        status, stopped_by = "finished", None
        try:
            while self.generation < self.cfg.generations:
                stopped_by = reached(self.limits, self.spent.figures())
                if stopped_by is not None:  # between generations: everything before is committed
                    status = "stopped"
                    break
                if not self._generation():
                    status = "stalled"
                    break
            self._commit()
        except BaseException:
            self._commit_on_the_way_out()
            self.store.set_status(self.run_id, "interrupted")
            self._write_status("interrupted", force=True)
            raise
        if stopped_by is not None:
            self.store.set_status(self.run_id, "stopped")
            self._event("budget_reached", f"run stopped after {self.generation} generation(s): budget {stopped_by} "
                                          "reached; raise it in the config and --resume to go on",
                        generation=self.generation - 1)
            self._write_status("stopped", force=True)
        else:
            self.store.set_status(self.run_id, "finished")
            self._event("run_finished", f"run {status} after {self.generation} generation(s)",
                        generation=self.generation - 1)
            self._write_status("finished", force=True)
        hvs = {name: [r[0] for r in self.store.query(
            "SELECT hypervolume FROM generations WHERE run_id = ? AND species = ? ORDER BY generation",
            [self.run_id, name])] for name in self.species}
        return RunSummary(self.run_id, self.run_dir, status, self.generation, hvs, dict(self.timings), stopped_by)

    def _generation(self) -> bool:
        """One generation of every species: ask → evaluate → tell → commit. False when a
        species' variation produced nothing new."""
        g, t0 = self.generation, time.monotonic()
        with self._timed("ask"):
            asked = [self._ask(lane) for lane in self.lanes]
        for lane, batch in zip(self.lanes, asked):
            if batch is None:
                self._event("stalled", f"{lane.key}: variation produced no new individual (all duplicates); "
                                       "stopping", generation=g)
                return False
        batches = [b for b in asked if b is not None]
        _number_proposals(batches)
        with self._timed("evaluate"):
            results, reused, duplicates = self._evaluate(g, batches)
        with self._timed("tell"):
            records = [self._tell(b, results, reused, duplicates, t0) for b in batches]
        with self._timed("replicate"):
            replicated = self._reevaluate(g, batches, records)
        with self._timed("validate"):
            self._validate(g, batches, records)
        if len(records) > len(self.species):  # islands: one record per species, the islands within
            records = self._islands(g, batches, records)
        self.state.generation = g + 1
        stop = self._count_spend(g, batches, results, duplicates, replicated, records, time.monotonic() - t0)
        self._commit_generation(records, last=g + 1 >= self.cfg.generations or stop)
        self._live = {}
        self._write_status("running", generation_seconds=records[-1].row.wall_seconds,
                           hv=records[0].row.hypervolume)
        for record in records:
            self.observer.generation_done(record.row)
        return True

    def _count_spend(self, g: int, batches: list[Asked], results: Mapping[str, tuple[Evaluated, Scored]],
                     duplicates: set[str], replicated: Sequence[Evaluated], records: list[GenerationRecord],
                     seconds: float) -> bool:
        """Add the generation's spend to the run's, as a row of its commit; whether a limit
        of the budget is now reached (the run then stops after committing it)."""
        tokens = sum_tokens([metric_tokens(r.metrics) for cid, (r, _) in results.items() if cid not in duplicates]
                            + [metric_tokens(r.metrics) for r in replicated]
                            + [{p.backend: p.tokens} for b in batches for p in b.proposals if p.backend in ENDPOINTS])
        self.spent.add(evaluations=len(results) - len(duplicates) + len(replicated), wall_seconds=seconds,
                       tokens=tokens)
        why = reached(self.limits, self.spent.figures())
        records[0].spend.append(SpendRow(g, self.spent.evaluations, self.spent.wall_seconds,
                                         json.dumps(self.spent.tokens, sort_keys=True),
                                         json.dumps(self.limits), why))
        return why is not None

    # --- ask --------------------------------------------------------------------------------
    def _ask(self, lane: Lane) -> Asked | None:
        """The next offspring, named and seeded; None when variation found nothing new."""
        state = self.state.species[lane.key]
        off = state.algorithm.ask()
        if off is None or len(off) == 0:
            return None
        cands: list[Candidate] = [ind.X[0] for ind in off]
        # one draw for all: the same numbers, in the same order, as one draw per individual
        seeds = state.seed_rng.integers(0, 2**64, size=len(cands), dtype=np.uint64).tolist()
        for k, (c, seed) in enumerate(zip(cands, seeds)):
            c.id = lane.prefix + individual_id(self.generation, k)
            c.seed = seed
        asked = {c.hash for c in cands}
        proposals = [ProposalRow(self.generation, lane.species, k, p.parent, p.task_id, p.backend, p.prompt[:4000],
                                 p.answer[:4000], p.seconds, p.tokens,
                                 json.dumps(p.row.to_list()) if p.row is not None else None, p.reason, p.child,
                                 p.child in asked, json.dumps(list(p.graph)) if p.graph is not None else None, p.edit)
                     for k, p in enumerate(lane.part.species.take_proposals())]
        return Asked(lane, off, cands, proposals, lane.part.species.take_variation())

    # --- evaluate ------------------------------------------------------------------------------
    def _evaluate(self, g: int, batches: list[Asked]
                  ) -> tuple[dict[str, tuple[Evaluated, Scored]], set[str], set[str]]:
        """Every candidate's evaluation, scored: those staged before a restart, those whose
        genome was evaluated before with the same context (its result, marked), then the rest
        from the pools, staged as they land. Also: the ids staged before a restart, and the
        duplicates."""
        by_id = {c.id: (b.lane, c) for b in batches for c in b.cands}
        results: dict[str, tuple[Evaluated, Scored]] = {}
        for row in self.store.staged(self.run_id, g) if g <= self._staged_until else []:
            found = by_id.get(row.individual_id)
            if found is not None and found[1].hash == row.hash:
                result: Evaluated = pickle.loads(row.outcome)
                results[row.individual_id] = (result, self._score(found[0], result))
        reused = set(results)
        if reused:
            self._event("reused", f"{len(reused)} evaluation(s) staged before the restart are kept", generation=g)
        work = []
        keys: dict[str, tuple[str, str]] = {}  # candidate -> (genome hash, context) when its result may serve again
        duplicates: set[str] = set()
        for b, pool in zip(batches, self.pools):
            species = b.lane.part.species
            context = self._context(b.lane, g) if species.consumes else species.context(g, ())
            ctx = None if species.consumes else _context_key(context)
            items = []
            for c in b.cands:
                if c.id in results:
                    continue
                if ctx is not None:
                    keys[c.id] = (c.hash, ctx)
                    earlier = self._results.get(keys[c.id])
                    if earlier is not None:  # evaluated before with this context: no work twice
                        same = replace(earlier, individual_id=c.id, wall_seconds=0.0, reused_from=earlier.individual_id)
                        results[c.id] = (same, self._score(b.lane, same))
                        duplicates.add(c.id)
                        continue
                items.append(EvalItem(c.id, c.genome, c.hash, c.seed, context))
            work.append((pool, items))
        if duplicates:
            self._event("duplicates", f"{len(duplicates)} genome(s) evaluated before with the same context: "
                                      "their results are kept, marked reused_from", generation=g)
        size = len(by_id)
        self.observer.generation_started(g, size, len(reused) + len(duplicates))
        self._live = {"evaluated": len(reused) + len(duplicates), "failed": 0, "size": size}
        self._write_status("running")
        self.cadence.generation_started()
        try:
            for outcome in self._cascaded(g, batches, work):
                lane, cand = by_id[outcome.individual_id]
                result = self._received(lane, outcome)
                self._to_stage.append((g, cand, result))
                if self.cadence.stage_now(result.wall_seconds):
                    self._flush_stage()
                scored = results[cand.id] = (result, self._score(lane, result))
                if cand.id in keys and result.status in REUSABLE:
                    self._results.setdefault(keys[cand.id], result)
                self._live["evaluated"] += 1
                if result.status != "ok":
                    self._live["failed"] += 1
                    self._event("evaluation_" + result.status, f"{cand.id}: {result.error or result.status}",
                                generation=g, individual_id=cand.id)
                self.observer.evaluated(result, scored[1].CV <= 0)
                self._write_status("running")
        except KeyboardInterrupt:  # an orderly stop keeps every evaluation that landed
            self._flush_stage()
            raise
        self._to_stage.clear()  # the generation's commit stores them all
        for cid in reused:  # staged before a restart: they may serve again too
            if cid in keys and results[cid][0].status in REUSABLE:
                self._results.setdefault(keys[cid], results[cid][0])
        return results, reused, duplicates

    def _cascaded(self, g: int, batches: Sequence[Asked], work: Sequence[tuple[Pool, list[EvalItem]]]
                  ) -> Iterator[Outcome]:
        """The outcomes of `work`; for a species with `evaluation.cascade`, its cheap stage
        first (`evolve.cascade`): those it gates come back as `gated` outcomes of the stage's
        metrics, and only the others are evaluated fully."""
        self._stages = {}
        gates = [(b.lane, pool, items) for b, (pool, items) in zip(batches, work)
                 if b.lane.part.evaluation.cascade is not None and items]
        if gates:
            lanes: dict[str, Lane] = {}
            cheap = []
            for lane, pool, items in gates:
                cas = lane.part.evaluation.cascade
                assert cas is not None  # gates holds only lanes with a cascade
                context = lane.part.species.stage(items[0].context, cas.tasks, cas.depth)
                cheap.append((pool, [replace(it, individual_id=it.individual_id + STAGE_SUFFIX, context=context)
                                     for it in items]))
                lanes.update((it.individual_id, lane) for it in items)
            for _, out in evaluate_together(cheap):
                ind = out.individual_id.removesuffix(STAGE_SUFFIX)
                cas = lanes[ind].part.evaluation.cascade
                assert cas is not None
                ok, why = passes(cas, out.status, out.metrics)
                self._stages[ind] = StageRow(ind, "cheap", g, out.status, metrics_json(out.metrics),
                                             float(out.wall_seconds), ok)
                if not ok:
                    yield Outcome(ind, GATED, dict(out.metrics), why, out.wall_seconds, node=out.node,
                                  isolation=out.isolation, tasks=out.tasks)
            work = [(pool, [it for it in items if it.individual_id not in self._stages
                            or self._stages[it.individual_id].passed]) for pool, items in work]
        for _, outcome in evaluate_together(work):
            yield outcome

    def _context(self, lane: Lane, g: int) -> object:
        """What the species makes of the other species' products before generation g; shipped
        once through Ray's object store when Ray runs here."""
        self._commit()  # products of earlier generations must be in the store
        species = lane.part.species
        rows = self.store.query(
            """SELECT i.species, e.individual_id, e.generation, e.trajectory
               FROM evaluations e JOIN individuals i USING (run_id, individual_id)
               WHERE e.run_id = ? AND e.generation < ? AND e.trajectory IS NOT NULL
                 AND list_contains(?, i.species)
               ORDER BY e.generation, e.individual_id""", [self.run_id, g, list(species.consumes)])
        products = [Product(r[0], r[1], int(r[2]), (self.run_dir / r[3]).resolve()) for r in rows
                    if (self.run_dir / r[3]).is_dir()]
        context = species.context(g, products)
        if isinstance(context, SummarisedContext):
            used = list(context.sources)
            shown = ", ".join(used[:4]) + (f", … ({len(used)})" if len(used) > 4 else "")
            self._event("corpus", f"{lane.key} generation {g}: "
                                  + ", ".join(f"{k.removeprefix('corpus_')} {v}" for k, v in context.summary.items())
                                  + (f"; from {shown}" if used else ""), generation=g)
        import ray

        return ray.put(context) if ray.is_initialized() else context

    def _flush_stage(self) -> None:
        """Stage what has landed and is still only buffered (also on an interrupt)."""
        if self._to_stage:
            with self._timed("stage"):  # pickled only now: most cheap evaluations are never staged
                self.store.stage(self.run_id, [StagedRow(g, c.id, c.hash, pickle.dumps(r, protocol=5))
                                               for g, c, r in self._to_stage])
                self._to_stage.clear()
            self.cadence.staged()

    def _score(self, lane: Lane, result: Evaluated) -> Scored:
        return score(result.status, self._selected(lane, result.metrics), lane.part.objectives,
                     lane.part.constraints)

    def _selected(self, lane: Lane, metrics: Mapping[str, Any]) -> Mapping[str, Any]:
        """The metrics selection reads: timing ones normalised under `evaluation.calibrate`."""
        if lane.part.evaluation.calibrate:
            return selected(metrics, lane.part.species.timing)
        return metrics

    def _received(self, lane: Lane, outcome: Outcome) -> Evaluated:
        """`receive`, with the evaluator's normalised timing metrics added (`evolve.calibrate`)."""
        result = receive(outcome, self.run_dir, self._lost)
        result.metrics = normalise(result.metrics, lane.part.species.timing, result.reference)
        if lane.part.evaluation.replicates > 1 and result.node:  # its next sample prefers another node
            self._nodes.setdefault(sampled(outcome.individual_id), set()).add(result.node)
        return result

    def _lost(self, kind: str, message: str, individual_id: str) -> None:
        self._event(kind, message, individual_id=individual_id)

    # --- tell -----------------------------------------------------------------------------------
    def _tell(self, b: Asked, results: Mapping[str, tuple[Evaluated, Scored]], reused: set[str],
              duplicates: set[str], t0: float) -> GenerationRecord:
        """Hand the species' scored offspring to pymoo; the generation's rows."""
        from evolve import genstats

        g, lane = self.generation, b.lane
        self._tell_pymoo(lane, b.off, [results[c.id][1] for c in b.cands])
        self._learn(lane, b.cands, {c.id: results[c.id][0].tasks for c in b.cands})
        pop = self.state.species[lane.key].algorithm.pop
        front_rows, hv, points = self._fronts(lane, g)
        n_reused = sum(c.id in reused for c in b.cands)
        n_dup = sum(c.id in duplicates for c in b.cands)
        failed = sum(results[c.id][0].status != "ok" for c in b.cands)
        species = lane.part.species
        stats = genstats.objective_stats([o.metric for o in lane.part.objectives],
                                         (results[c.id][1].values for c in b.cands
                                          if results[c.id][0].status == "ok"))
        why = genstats.failures((results[c.id][0].status, results[c.id][0].error) for c in b.cands)
        stages = self._stage_rows(b, results, g)
        cheap = [s for s in stages if s.stage == "cheap"]
        gated = sum(not s.passed for s in cheap)
        saved = self._saving.setdefault(lane.key, Saving()).saved(
            gated, [s.seconds for s in stages if s.stage == "full"]) if cheap else 0.0
        return GenerationRecord(
            GenerationRow(g, lane.species, hv, len(b.cands) - n_reused - n_dup, failed, n_reused, len(pop),
                          sum(f.rank == 0 for f in front_rows), time.monotonic() - t0, n_dup,
                          json.dumps(b.variation, sort_keys=True),
                          genstats.encode(stats), points, genstats.encode(why), gated,
                          math.fsum(s.seconds for s in cheap), saved),
            individuals=[IndividualRow(c.id, lane.species, g, c.hash, c.canonical or species.canonical_json(c.genome),
                                       list(c.parents), c.seed, c.origin) for c in b.cands],
            evaluations=[_evaluation_row(g, *results[c.id]) for c in b.cands],
            fronts=front_rows,
            proposals=b.proposals,
            tasks=[task_row(c.id, g, t) for c in b.cands for t in results[c.id][0].tasks or ()],
            stages=stages)

    def _stage_rows(self, b: Asked, results: Mapping[str, tuple[Evaluated, Scored]], g: int) -> list[StageRow]:
        """Each stage its candidates went through this generation: the cheap one, and the
        full one of those that passed the gate."""
        rows = []
        for c in b.cands:
            cheap = self._stages.get(c.id)
            if cheap is None:
                continue
            rows.append(cheap)
            if cheap.passed:
                r = results[c.id][0]
                rows.append(StageRow(c.id, "full", g, r.status, metrics_json(r.metrics), r.wall_seconds, True))
        return rows

    def _fronts(self, lane: Lane, g: int) -> tuple[list[FrontRow], float | None, int]:
        """The surviving population's fronts rows, its hypervolume and the front's distinct points."""
        from evolve import genstats
        from evolve.selection import fronts, hypervolume

        algorithm = self.state.species[lane.key].algorithm
        pop = algorithm.pop
        rank, crowding = fronts(algorithm)
        hv = hypervolume(pop.get("F").astype(float), pop.get("CV")[:, 0].astype(float), lane.part.ref_point)
        return [FrontRow(g, ind.X[0].id, int(r), None if np.isnan(cd) else float(cd))
                for ind, r, cd in zip(pop, rank, crowding)], hv, genstats.distinct_points(pop.get("F")[rank == 0])

    # --- islands -----------------------------------------------------------------------------------
    def _islands(self, g: int, batches: list[Asked], records: list[GenerationRecord]) -> list[GenerationRecord]:
        """One record per species from its islands' (individuals, evaluations and the rest
        together; fronts and hypervolume over the union; each island's own ranks and the
        island every newcomer was born on), then the migration when it is due."""
        from evolve import genstats
        from evolve.selection import hypervolume

        merged = []
        for name in self.species:
            mine = [(b, rec) for b, rec in zip(batches, records) if b.lane.species == name]
            lane = mine[0][0].lane
            pops = [self.state.species[b.lane.key].algorithm.pop for b, _ in mine]
            ids, F, CV, rank, crowding = overall(pops)
            hv = hypervolume(F, CV, lane.part.ref_point)
            rows = [rec.row for _, rec in mine]
            evaluations = [e for _, r in mine for e in r.evaluations]
            stats = genstats.objective_stats([o.metric for o in lane.part.objectives],
                                             (e.objectives for e in evaluations if e.status == "ok"))
            variation: dict[str, int] = {}
            for b, _ in mine:
                for key, n in b.variation.items():
                    variation[key] = variation.get(key, 0) + n
            rec = GenerationRecord(
                GenerationRow(g, name, hv, sum(r.evaluations for r in rows), sum(r.failed for r in rows),
                              sum(r.reused for r in rows), len(ids), int(np.sum(rank == 0)),
                              max(r.wall_seconds for r in rows), sum(r.duplicates for r in rows),
                              json.dumps(variation, sort_keys=True), genstats.encode(stats),
                              genstats.distinct_points(F[rank == 0]),
                              genstats.encode(genstats.failures((e.status, e.error) for e in evaluations)),
                              sum(r.gated for r in rows), math.fsum(r.stage_seconds for r in rows),
                              None if any(r.gate_saved is None for r in rows)
                              else math.fsum(r.gate_saved or 0.0 for r in rows)),
                individuals=[i for _, r in mine for i in r.individuals],
                evaluations=evaluations,
                fronts=[FrontRow(g, i, int(r), None if np.isnan(cd) else float(cd))
                        for i, r, cd in zip(ids, rank, crowding)],
                tasks=[t for _, r in mine for t in r.tasks], held_out=[h for _, r in mine for h in r.held_out],
                proposals=[p for _, r in mine for p in r.proposals],
                stages=[s for _, r in mine for s in r.stages],
                islands=[IslandRow(c.id, b.lane.island or 0) for b, _ in mine for c in b.cands],
                island_fronts=[IslandFrontRow(g, b.lane.island or 0, f.individual_id, f.rank, f.crowding)
                               for b, r in mine for f in r.fronts])
            merged.append(rec)
        if due(g, self.cfg.islands.interval, self.cfg.generations):
            moved = self._migrate()
            merged[0].migrations.extend(MigrationRow(g, i, src, dst) for i, src, dst in moved)
            self._event("migrated", f"{len(moved)} individual(s) moved along the ring of "
                                    f"{self.cfg.islands.count} islands", generation=g)
        return merged

    def _migrate(self) -> list[tuple[str, int, int]]:
        """Every species' islands send their best along the ring (`evolve.islands.migrate`)."""
        moved = []
        for name in self.species:
            algorithms = [self.state.species[lane.key].algorithm for lane in self.lanes if lane.species == name]
            moved.extend(migrate(algorithms, self.cfg.islands.migrants))
        return moved

    # --- re-evaluate -----------------------------------------------------------------------------
    def _reevaluate(self, g: int, batches: list[Asked], records: list[GenerationRecord]) -> list[Evaluated]:
        """Species with `evaluation.replicates` > 1: each front member (and each member the
        guardrail keeps) with fewer samples evaluates once more; the means replace its
        objectives, survival ranks again, and the reported front is decided
        (`evolve.replicates`). The replicates run."""
        work: list[tuple[Pool, list[EvalItem]]] = []
        plans: dict[str, tuple[Lane, GenerationRecord, int]] = {}
        guarded = []
        if self._nodes:  # the nodes of individuals no longer in a population are needed no more
            alive = {ind.X[0].id for b in batches for ind in self.state.species[b.lane.key].algorithm.pop}
            self._nodes = {i: nodes for i, nodes in self._nodes.items() if i in alive}
        for b, pool, rec in zip(batches, self.pools, records):
            lane, ev = b.lane, b.lane.part.evaluation
            if ev.replicates <= 1:
                continue
            guarded.append((lane, rec))
            species = lane.part.species
            wanted = {f.individual_id for f in rec.fronts if f.rank == 0} | self._members.get(lane.key, set())
            context: object = None
            items: list[EvalItem] = []
            for ind in self.state.species[lane.key].algorithm.pop:
                cand: Candidate = ind.X[0]
                k = len(ind.get("samples") or [None])  # samples so far: the evaluation is sample 0
                if cand.id not in wanted or ind.CV[0] > 0 or k >= ev.replicates:
                    continue
                if not items:
                    context = self._context(lane, g) if species.consumes else species.context(g, ())
                item_id = replicate_id(cand.id, k)
                plans[item_id] = (lane, rec, k)
                items.append(EvalItem(item_id, cand.genome, cand.hash, replicate_seed(cand.seed, k), context,
                                      avoid=tuple(sorted(self._nodes.get(cand.id, ())))))
            if items:
                work.append((pool, items))
        ran: list[Evaluated] = []
        for _, outcome in evaluate_together(work):
            lane, rec, k = plans[outcome.individual_id]
            result = self._received(lane, outcome)
            ran.append(result)
            ind_id = sampled(outcome.individual_id)
            s = self._score(lane, result)
            rec.replicates.append(ReplicateRow(ind_id, k, g, result.status, s.values, metrics_json(result.metrics),
                                               s.CV, result.wall_seconds, result.node, result.error))
            if result.status != "ok":  # kept and counted: the member's mean goes infeasible
                self._event("replicate_" + result.status, f"{outcome.individual_id}: {result.error or result.status}",
                            generation=g, individual_id=ind_id)
        for lane, rec in guarded:
            rec.replicates.sort(key=lambda r: (r.individual_id, r.replicate))
            self._add_samples(lane, [(r.individual_id, r.status, self._score_row(lane, r.status, r.metrics))
                                     for r in rec.replicates])
            rec.fronts, rec.row.hypervolume, rec.row.front_points = self._fronts(lane, g)
            rec.row.front_size = sum(f.rank == 0 for f in rec.fronts)
            rec.standing = self._stand(lane, g, rec)
        return ran

    def _score_row(self, lane: Lane, status: str, metrics: str) -> Scored:
        return score(status, self._selected(lane, json.loads(metrics)), lane.part.objectives, lane.part.constraints)

    def _add_samples(self, lane: Lane, samples: Sequence[tuple[str, str, Scored]]) -> None:
        """Each individual's new samples join its earlier ones (kept with it in pymoo's
        population, so in the checkpoint); its objectives and constraints become their means
        and survival ranks the population again. The same live and on replay."""
        if not samples:
            return
        from evolve.selection import resurvive

        algorithm = self.state.species[lane.key].algorithm
        by_id = {ind.X[0].id: ind for ind in algorithm.pop}
        for ind_id, status, s in samples:
            ind = by_id.get(ind_id)
            if ind is None:
                continue
            mine = ind.get("samples") or [(np.array(ind.F, dtype=float), np.array(ind.G, dtype=float), "ok")]
            mine.append((s.F, s.G, status))
            ind.set("samples", mine)
            agg = aggregate([m[0] for m in mine], [m[1] for m in mine], [m[2] for m in mine])
            ind.F, ind.G = agg.F, agg.G
            ind.CV = None  # pymoo caches it: computed again from the mean G
        resurvive(algorithm)

    def _stand(self, lane: Lane, g: int, rec: GenerationRecord) -> list[StandingRow]:
        """The reported front after the generation: members and pending challengers."""
        ev, objectives = lane.part.evaluation, lane.part.objectives
        pop = self.state.species[lane.key].algorithm.pop
        by_id = {ind.X[0].id: ind for ind in pop}
        samples = {i: ind.get("samples") or [(ind.F, ind.G, "ok")] for i, ind in by_id.items()}
        decided = standing([f.individual_id for f in rec.fronts if f.rank == 0], self._members.get(lane.key, set()),
                           {i: ind.F for i, ind in by_id.items()},
                           {i: bool(ind.CV[0] <= 0) for i, ind in by_id.items()},
                           {i: len(v) for i, v in samples.items()}, min_samples=ev.min_samples,
                           min_delta=ev.min_delta)
        self._members[lane.key] = {i for i, v in decided.items() if v == MEMBER}
        return [StandingRow(g, i, v, len(samples[i]), sum(m[2] != "ok" for m in samples[i]),
                            natural(objectives, by_id[i].F), spread([m[0] for m in samples[i]]))
                for i, v in sorted(decided.items())]

    def _stored_members(self, generation: int) -> dict[str, set[str]]:
        """The reported front's members after `generation`, per species (resume)."""
        out: dict[str, set[str]] = {}
        for species, ind in self.store.query(
                """SELECT i.species, s.individual_id FROM standing s JOIN individuals i USING (run_id, individual_id)
                   WHERE s.run_id = ? AND s.generation = ? AND s.standing = ?""", [self.run_id, generation, MEMBER]):
            out.setdefault(species, set()).add(ind)
        return out

    # --- validate --------------------------------------------------------------------------------
    def _validate(self, g: int, batches: list[Asked], records: list[GenerationRecord]) -> None:
        """Every feasible front member not yet validated is evaluated on the species' whole
        validation split (a genome validated before lends its result); the rows join the
        generation's record. Selection never sees them: the split only measures."""
        work: list[tuple[Pool, list[EvalItem]]] = []
        plans: dict[str, tuple[GenerationRecord, Candidate, HeldOut]] = {}  # item id -> where it goes
        started: dict[str, float] = {}
        for b, pool, rec in zip(batches, self.pools, records):
            parts = b.lane.part.species.held_out(VALIDATION) if b.lane.part.evaluation.validation else []
            if not parts:
                continue
            algorithm = self.state.species[b.lane.key].algorithm
            front = {f.individual_id for f in rec.fronts if f.rank == 0}
            items = []
            for ind in algorithm.pop:
                cand: Candidate = ind.X[0]
                if cand.id not in front or ind.CV[0] > 0 or cand.id in self._validated_ids:
                    continue
                known = self._validated.get(cand.hash)
                if known is not None:  # the same genome under another id: its result, marked so
                    rec.held_out.append(replace(known[0], individual_id=cand.id, generation=g,
                                                reused_from=known[0].individual_id))
                    rec.tasks.extend(replace(t, individual_id=cand.id) for t in known[1])
                    self._validated_ids.add(cand.id)
                    continue
                started[cand.id] = time.monotonic()
                for j, part in enumerate(parts):
                    item_id = f"{cand.id}.{VALIDATION}{j}"
                    plans[item_id] = (rec, cand, part)
                    items.append(EvalItem(item_id, cand.genome, cand.hash, cand.seed, part.context))
            if items:
                work.append((pool, items))
        if not work:
            return
        n = len(started)
        self._event("validating", f"{n} new front member(s) on the {VALIDATION} split", generation=g)
        landed: dict[str, list[tuple[HeldOut, Outcome]]] = {}
        for _, outcome in evaluate_together(work):
            rec, cand, part = plans[outcome.individual_id]
            landed.setdefault(cand.id, []).append((part, outcome))
        for cand_id, got in landed.items():
            rec, cand, _ = plans[f"{cand_id}.{VALIDATION}0"]
            held, tasks = summarise(cand_id, VALIDATION, g, got, time.monotonic() - started[cand_id])
            self._validated[cand.hash] = (held, tasks)
            self._validated_ids.add(cand_id)
            rec.held_out.append(held)
            rec.tasks.extend(tasks)
        best = max(h.pass_rate for rec in records for h in rec.held_out)
        self._event("validated", f"{n} front member(s) on the {VALIDATION} split; best pass rate {best:.3f}",
                    generation=g)

    def _stored_results(self) -> dict[tuple[str, str], Evaluated]:
        """What earlier sessions of the run evaluated, by (genome hash, context): a resumed run
        evaluates no genome twice either."""
        out: dict[tuple[str, str], Evaluated] = {}
        rows = self.store.query(
            """SELECT i.species, e.generation, i.hash, e.individual_id, e.status, e.metrics, e.error, e.wall_seconds,
                      e.node, e.attempts, e.isolation, e.trajectory, e.artifact, e.result_bytes
               FROM evaluations e JOIN individuals i USING (run_id, individual_id)
               WHERE e.run_id = ? AND e.reused_from IS NULL AND list_contains(?, e.status)
               ORDER BY e.generation, e.individual_id""", [self.run_id, list(REUSABLE)])
        if not rows:
            return out
        lanes = {lane.species: lane for lane in self.lanes}
        contexts: dict[tuple[str, int], str | None] = {}
        for species, g, hash_, ind, status, metrics, error, wall, node, attempts, isolation, traj, art, size in rows:
            lane = lanes.get(species)
            if lane is None or lane.part.species.consumes:
                continue
            if (species, g) not in contexts:
                contexts[species, g] = _context_key(lane.part.species.context(g, ()))
            ctx = contexts[species, g]
            if ctx is not None:
                out.setdefault((hash_, ctx), Evaluated(ind, status, json.loads(metrics), error, wall, node, attempts,
                                                       isolation, traj, art, size, self._stored_tasks(ind)))
        return out

    def _stored_tasks(self, individual: str) -> list[dict[str, Any]] | None:
        rows = self._train_tasks.get(individual)
        return [task_dict(r) for r in rows] if rows else None

    def _stored_validation(self) -> dict[str, tuple[HeldOutRow, list[TaskResultRow]]]:
        """What earlier sessions of the run validated, by genome hash (a resumed run never
        validates a genome twice)."""
        held = self.store.query(
            """SELECT i.hash, h.individual_id, h.split, h.generation, h.status, h.passed, h.tasks, h.pass_rate,
                      h.error, h.wall_seconds, h.reused_from
               FROM held_out h JOIN individuals i USING (run_id, individual_id)
               WHERE h.run_id = ? AND h.split = ? AND h.reused_from IS NULL""", [self.run_id, VALIDATION])
        tasks = self.store.task_results(self.run_id, VALIDATION) if held else {}
        return {hash_: (HeldOutRow(*row), tasks.get(row[0], [])) for hash_, *row in held}

    def _learn(self, lane: Lane, cands: Sequence[Candidate],
               tasks: Mapping[str, Sequence[Mapping[str, Any]] | None]) -> None:
        """Each candidate's children start from what it learned from its own per-task results,
        where its species learns (`Species.learn`; a tower's credit assignment)."""
        species = lane.part.species
        for c in cands:
            mine = tasks.get(c.id)
            c.heir = species.learn(c.genome, mine) if mine else None

    def _tell_pymoo(self, lane: Lane, off: Population, scored: Sequence[Scored]) -> None:
        from evolve.selection import tell

        algorithm = self.state.species[lane.key].algorithm
        if lane.part.evaluation.replicates > 1:  # survival keeps the reported front's members
            algorithm.survival.protected = frozenset(self._members.get(lane.key, ()))
        F = np.array([s.F for s in scored])  # (n, n_obj)
        G = np.array([s.G for s in scored])  # (n, 1 + n_constr)
        tell(algorithm, off, F, G)
        algorithm.off = None  # not needed by the next ask; keeps checkpoints small

    # --- commit ---------------------------------------------------------------------------------
    def _commit_generation(self, records: list[GenerationRecord], *, last: bool) -> None:
        """Gather the generation; checkpoint and commit as the cadence says."""
        self._pending.extend(records)
        if self.cadence.checkpoint_now(last=last):
            with self._timed("checkpoint"):
                self._checkpoint = SavedState(self.generation, _dumps(self.state), self._versions)
            self.cadence.checkpointed()
        if self.cadence.commit_now(records[-1].row.wall_seconds, last=last):
            self._commit()

    def _commit(self) -> None:
        if self._pending:
            with self._timed("commit"):
                self.store.commit_generations(self.run_id, self._pending, self._checkpoint)
                self._pending.clear()
                self._checkpoint = None
        self.cadence.committed()

    def _commit_on_the_way_out(self) -> None:
        """Keep the whole generations already done when the run is interrupted."""
        try:
            self._commit()
        except Exception:  # noqa: BLE001 - the error being raised is the one to report
            self._pending.clear()

    # --- state and resume -------------------------------------------------------------------------
    def _fresh_state(self) -> EngineState:
        """Generation 0 of every species: the first is seeded by the run seed itself (so a
        species evolves as it would alone), the others by seeds drawn from it."""
        from evolve.selection import make_algorithm

        cfg, states = self.cfg, {}
        for lane in self.lanes:
            part, k, j = lane.part, lane.index, lane.island or 0
            seed = cfg.seed if k == 0 else int(np.random.SeedSequence([cfg.seed, k]).generate_state(1)[0])
            if j:  # island j > 0: its own seeds, drawn from the run's
                seed = int(np.random.SeedSequence([cfg.seed, k, 0x15, j]).generate_state(1)[0])
            algorithm = make_algorithm(
                part.algorithm.name, part.species, pop_size=part.population.size,
                n_offsprings=part.population.offspring, n_obj=len(part.objectives),
                n_ieq_constr=1 + len(part.constraints), generations=cfg.generations,
                seed=seed, partitions=part.algorithm.partitions, guarded=part.evaluation.replicates > 1)
            entropy = [cfg.seed, 0x5EED] + ([k] if k else []) + ([0x15, j] if j else [])
            states[lane.key] = SpeciesState(algorithm, np.random.default_rng(np.random.SeedSequence(entropy)))
        return EngineState(0, states)

    def _load_state(self) -> EngineState:
        """The last checkpoint (or a fresh state), brought up to the last committed generation.

        A checkpoint is pymoo's algorithm pickled: only the pymoo that wrote it is sure to
        read it back. Another one starts afresh and replays every committed generation, the
        replay holding it to the same individuals."""
        saved = self.store.checkpoint(self.run_id)
        state = None
        if saved is not None and saved.versions.get("pymoo") == self._versions["pymoo"]:
            state = pickle.loads(saved.state)
            if not isinstance(state, EngineState) or sorted(state.species) != sorted(lane.key for lane in self.lanes):
                held = ", ".join(sorted(state.species)) if isinstance(state, EngineState) else type(state).__name__
                raise EvolveError(f"run {self.run_id}: its checkpoint holds species {held}, the config "
                                  f"{', '.join(lane.key for lane in self.lanes)}")
        elif saved is not None:
            self._event("checkpoint_skipped", f"the checkpoint was written by pymoo {saved.versions.get('pymoo')}, "
                                              f"this is pymoo {self._versions['pymoo']}: replaying from generation 0")
        self.state = state or self._fresh_state()
        self._members = self._stored_members(self.generation - 1)
        if state is not None:
            from evolve.selection import use_species

            for lane in self.lanes:
                use_species(self.state.species[lane.key].algorithm, lane.part.species)
            self._relearn(self.generation)
        last = self.store.last_generation(self.run_id)
        start = self.generation
        with self._timed("replay"):
            while last is not None and self.generation <= last:
                self._replay()
        if self.generation > start:
            self._event("replayed", f"generations {start}..{self.generation - 1} replayed "
                                    "from the store (no evaluation repeated)", generation=self.generation)
        return self.state

    def _relearn(self, until: int) -> None:
        """What a species learned lives in the driver (a tower's reflection memory), not in the
        checkpoint: each learns again from the generations before `until`, as the run did."""
        if not self._train_tasks:
            return  # nothing to learn from (no species with tasks)
        parts = {lane.species: lane.part.species for lane in self.lanes}
        for ind, species, genome in self.store.query(
                """SELECT individual_id, species, genome FROM individuals WHERE run_id = ? AND generation < ?
                   ORDER BY generation, individual_id""", [self.run_id, until]):
            tasks = self._stored_tasks(ind)
            if tasks and species in parts:
                parts[species].learn(parts[species].from_data(json.loads(genome)), tasks)

    def _replay(self) -> None:
        """Redo a committed generation's ask/tell from the store, checking it is the same."""
        g = self.generation
        for lane in self.lanes:
            batch = self._ask(lane)
            cands = batch.cands if batch is not None else []
            rows = self.store.query(
                """SELECT i.individual_id, i.hash, i.seed, e.status, e.metrics
                   FROM individuals i JOIN evaluations e USING (run_id, individual_id)
                   WHERE i.run_id = ? AND i.generation = ? AND i.species = ? AND starts_with(i.individual_id, ?)
                   ORDER BY i.individual_id""", [self.run_id, g, lane.species, lane.prefix])
            mine = [(c.id, c.hash, c.seed) for c in cands]
            stored = [(r[0], r[1], int(r[2])) for r in rows]
            if batch is None or mine != stored:
                first = next((f"{a} != {b}" for a, b in zip(mine, stored) if a != b), f"{len(mine)} vs {len(stored)}")
                raise EvolveError(f"run {self.run_id}: replaying generation {g} does not give the stored "
                                  f"individuals ({first}); this installation cannot resume it")
            part = lane.part
            self._tell_pymoo(lane, batch.off, [self._score_row(lane, r[3], r[4])
                                               for r in rows])
            # learn as the live run did: the next ask must be the same
            self._learn(lane, cands, {c.id: self._stored_tasks(c.id) for c in cands})
            if part.evaluation.replicates > 1:  # and take the replicates it took, in the same order
                self._add_samples(lane, [(ind, status, self._score_row(lane, status, metrics))
                                         for ind, status, metrics in self.store.query(
                    """SELECT r.individual_id, r.status, r.metrics FROM replicates r
                       JOIN individuals i USING (run_id, individual_id)
                       WHERE r.run_id = ? AND r.generation = ? AND i.species = ?
                       ORDER BY r.individual_id, r.replicate""", [self.run_id, g, lane.species])])
                self._members[lane.key] = self._stored_members(g).get(lane.key, set())
                for ind, node in self.store.query(  # the nodes its samples ran on, as the live run knew them
                        """SELECT individual_id, node FROM evaluations WHERE run_id = ? AND generation = ?
                           UNION ALL SELECT individual_id, node FROM replicates WHERE run_id = ? AND generation = ?""",
                        [self.run_id, g, self.run_id, g]):
                    if node:
                        self._nodes.setdefault(ind, set()).add(node)
        if self.cfg.islands.count > 1 and due(g, self.cfg.islands.interval, self.cfg.generations):
            self._migrate()  # as the live run did after this generation
        self.state.generation = g + 1

    # --- events, status, timings ----------------------------------------------------------------
    def _event(self, kind: str, message: str, *, generation: int | None = None,
               individual_id: str | None = None) -> None:
        self.store.event(self.run_id, kind, message, generation=generation, individual_id=individual_id)
        self.observer.event(kind, message)

    def pool_events(self, species: str) -> Callable[[str, str, str | None], None]:
        """The event sink of one species' pool: its name leads every message."""
        return lambda kind, message, ind: self._event(kind, f"{species}: {message}", individual_id=ind)

    def _write_status(self, state: str, *, force: bool = False, generation_seconds: float = 0.0,
                      hv: float | None = None) -> None:
        """A JSON snapshot for `evolve status` while the store is locked by this driver."""
        if not (force or self.cadence.status_now(generation_seconds)):
            return
        self.cadence.status_written()
        data: dict[str, object] = {
            "run_id": self.run_id, "pid": os.getpid(), "state": state, "generation": self.generation,
            "generations": self.cfg.generations, "species": ",".join(self.species),
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"), **self._live,
            "spend": self.spent.figures(), "budget": self.limits}
        if hv is not None:
            data["hypervolume"] = hv
        if self._validated:
            data["validation"] = max(h.pass_rate for h, _ in self._validated.values())
        tmp = self.run_dir / (STATUS_FILE + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.run_dir / STATUS_FILE)

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] += time.perf_counter() - start


def _evaluation_row(g: int, r: Evaluated, s: Scored) -> EvaluationRow:
    cv = s.CV
    return EvaluationRow(r.individual_id, g, r.status, s.values, metrics_json(r.metrics), s.G[1:].tolist(), cv,
                         cv <= 0, s.note, r.wall_seconds, r.node, r.trajectory, r.error, r.attempts,
                         r.result_bytes, r.artifact, r.isolation, r.reused_from)


def _number_proposals(batches: Sequence[Asked]) -> None:
    """Proposals are numbered per species and generation: a species' islands share the numbers."""
    seq: dict[str, int] = {}
    for b in batches:
        for p in b.proposals:
            p.seq = seq.get(p.species, 0)
            seq[p.species] = p.seq + 1


def _context_key(context: object) -> str | None:
    """The context as canonical JSON, or None when it is not JSON (then nothing is reused)."""
    try:
        return json.dumps(context, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None


def _dumps(state: EngineState) -> bytes:
    """The checkpoint: cloudpickle, since pymoo's NSGA-III holds local functions (plain
    `pickle.loads` reads it back)."""
    from ray import cloudpickle

    return bytes(cloudpickle.dumps(state, protocol=5))


# --- one call that does it all ------------------------------------------------------------------
def run_evolution(resolved: Resolved, run_id: str, run_dir: Path, *, address: str | None = None,
                  observer: Observer | None = None, cadence: Cadence | None = None) -> RunSummary:
    """Connect to Ray, start every species' actors (trainer actors where the species trains
    models; none for a species evaluated in the driver, `evaluation.actors: 0`), run the
    generations; tidy up afterwards. When every species is evaluated in the driver and no
    cluster is named, Ray is not started at all."""
    from contextlib import nullcontext

    from evolve.cluster import connect
    from evolve.pools import DriverPool
    from evolve.trainers import make_pools, placement

    cfg = resolved.config
    remote = [part for part in resolved.parts if part.evaluation.actors != 0]
    with Store.open(run_dir) as store:
        engine = Engine(resolved, run_id, run_dir, store, observer, cadence)
        with (connect(address, num_cpus=cfg.ray.num_cpus) if remote or address else nullcontext(None)) as cluster:
            made: Iterator[Pool] = iter([])
            if remote and cluster is not None:
                made = iter(make_pools(remote, run_id=run_id, cpus=cluster.cpus, gpus=cluster.gpus,
                                       embedded=cluster.mode == "embedded", on_event=engine.pool_events))
            pools = [next(made) if part.evaluation.actors != 0 else
                     DriverPool(part.species, run_id=run_id, timeout=part.evaluation.timeout,
                                calibrate_every=part.evaluation.calibration)
                     for part in resolved.parts]
            try:
                for name, pool in zip(engine.species, pools):
                    pool.wait_ready()
                    engine._event("actors_placed", f"{name}: evaluated in the driver (evaluation.actors: 0)"
                                  if pool.size == 0 else
                                  f"{name}: {pool.size} {pool.role} actor(s) on {placement(pool.actor_options)}")
                return engine.run(pools, cluster)
            finally:
                for pool in pools:
                    pool.close()
