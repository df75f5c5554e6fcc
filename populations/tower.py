"""The `tower` species: harness-tower genomes (`harness_tower.genome.TowerGenome`).

Variation (DEAP toolbox of the pure operators in `populations.operators`): experience
entries replaced, inserted, deleted, weights perturbed; typing mode and content source
flipped; chunk, top-k and iteration budget changed; the task level's op graph changed (a
node's parameter, an input rewired, a node inserted on an edge or bypassed); crossover swaps
scalar genes, the tails of experience tables and typed subgraphs. Every child is a valid,
renderable genome: a graph child that fails its type check is refused (counted per
generation, `take_variation`) and the parent's graph kept.

Evaluation runs a real tower (tmux + git sandbox) at the configured depth and sends the
trajectory repository back as `git bundle` bytes.
"""
from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from deap import base  # type: ignore[import-untyped]  # DEAP ships no type information

from harness_tower.errors import GenomeError, TowerError
from harness_tower.genome import (
    CONTENT_SOURCES,
    TYPING_MODES,
    ExperienceEntry,
    TowerGenome,
    default_experience,
    load_genome,
)
from harness_tower.slots import extract, fill, generalise
from harness_tower.tasks import Task, load_suite
from populations.base import EvalItem, HeldOut, Outcome, Species, py_random
from populations.errors import SpeciesError
from populations.objectives import Constraint
from populations.operators import crossover, graph, mutation
from populations.operators.mutation import MAX_ENTRIES, distinct
from populations.reflect import BACKENDS, Proposal, Reflector, attempts_of

SEEDS_DIR = Path(__file__).resolve().parent / "seeds"
BUNDLE_TIMEOUT = 120.0

# SPEC §4: metric -> better direction (None: no natural direction, say it in the config)
DIRECTIONS: dict[str, str | None] = {
    "avg_interval": "min", "max_diff_len": "min", "syntax_ratio": "max", "code_bytes": None,
    "bytes_ratio": None, "bytes_convergence": "min", "edit_distance": "max", "task_correct": "max",
    "keys_audit": "min", "self_read": "min", "untyped_chars": "min", "tamper": "min", "idle_keys": "min",
    "commits": None, "task_pass_rate": "max", "tasks_passed": "max", "tasks_sampled": None,
}
# metrics with a bounded range (a cascade's threshold must lie inside); others are unbounded
RANGES: dict[str, tuple[float, float]] = {
    "task_pass_rate": (0.0, 1.0), "syntax_ratio": (0.0, 1.0), "task_correct": (0.0, 1.0),
    "tasks_passed": (0.0, math.inf), "tasks_sampled": (0.0, math.inf),
}
UNLEVELLED = ("bytes_convergence", "task_correct", "keys_audit", "self_read", "untyped_chars", "tamper",
              "task_pass_rate", "tasks_passed", "tasks_sampled")
TRAIN = "train"  # the only split evolution selects on
# SPEC §4 constraints every tower run holds unless its config lists its own
DEFAULT_CONSTRAINTS = ("keys_audit", "self_read", "untyped_chars", "tamper")

# mutation operator -> relative weight of being picked
MUTATIONS: dict[str, float] = {
    "perturb_weights": 2.0, "replace_entry": 1.0, "insert_entry": 1.0, "delete_entry": 1.0,
    "flip_typing_mode": 2.0, "flip_content_source": 1.0, "change_chunk": 2.0, "change_topk": 1.0,
    "change_max_iterations": 1.0,
    "graph_param": 0.5, "graph_rewire": 0.5, "graph_insert": 0.5, "graph_delete": 0.5,
}
GRAPH_OPERATORS = {"graph_param": graph.change_param, "graph_rewire": graph.rewire,
                   "graph_insert": graph.insert_node, "graph_delete": graph.delete_node}


class TowerSpecies(Species[TowerGenome]):
    """Genome: `TowerGenome`; evaluation: a depth-N tower in a fresh sandbox."""

    name = "tower"
    batch_size = 1
    directions = DIRECTIONS
    timing = ("avg_interval",)

    def __init__(self, depth: int = 2, seeds: Sequence[str] | None = None,
                 content_sources: Sequence[str] = ("literal", "kernel"),
                 typing_modes: Sequence[str] = TYPING_MODES, crossover_prob: float = 0.9,
                 mutations: dict[str, float] | None = None, max_mutations: int = 2,
                 isolation: str = "auto", suite: str = "shell", tasks: int = 4,
                 harvested: Sequence[str] = (), credit: float = 0.0, reflection: float = 0.0,
                 reflection_backend: str = "retrieval", reflection_rows: int = 1,
                 graph_crossover: float = 0.5) -> None:
        if isolation not in ("auto", "bwrap", "process"):
            raise SpeciesError(f"isolation must be auto, bwrap or process (got {isolation!r})", species=self.name)
        if not isinstance(depth, int) or not 1 <= depth <= 8:
            raise SpeciesError(f"depth must be an integer in 1..8 (got {depth!r})", species=self.name)
        for cs in content_sources:
            if cs not in CONTENT_SOURCES:
                raise SpeciesError(f"content_sources: {cs!r} is not one of {CONTENT_SOURCES}", species=self.name)
        for tm in typing_modes:
            if tm not in TYPING_MODES:
                raise SpeciesError(f"typing_modes: {tm!r} is not one of {TYPING_MODES}", species=self.name)
        weights = dict(MUTATIONS if mutations is None else mutations)
        unknown = sorted(set(weights) - set(MUTATIONS))
        if unknown or not any(w > 0 for w in weights.values()):
            raise SpeciesError(f"mutations: unknown operator(s) {unknown} (known: {', '.join(MUTATIONS)})"
                               if unknown else "mutations: give at least one positive weight", species=self.name)
        self.depth = depth
        self.isolation = isolation  # resolved where each evaluation runs (`auto`: bwrap where it works)
        self.crossover_prob = crossover_prob
        self.max_mutations = max(1, max_mutations)
        try:
            self.suite = load_suite(suite)
        except TowerError as exc:
            raise SpeciesError(f"suite: {exc}", species=self.name) from None
        train = self.suite.split(TRAIN)
        if not isinstance(tasks, int) or isinstance(tasks, bool) or not 1 <= tasks <= len(train):
            raise SpeciesError(f"tasks must be an integer in 1..{len(train)} (the suite's {TRAIN} split), "
                               f"got {tasks!r}", species=self.name)
        self.tasks_per_evaluation = tasks
        if not isinstance(credit, int | float) or isinstance(credit, bool) or not 0.0 <= credit <= 1.0:
            raise SpeciesError(f"credit must be a learning rate in 0..1 (0: off), got {credit!r}", species=self.name)
        self.credit = float(credit)
        if not isinstance(reflection, int | float) or isinstance(reflection, bool) or not 0.0 <= reflection <= 1.0:
            raise SpeciesError(f"reflection must be the share of mutations made by reflection, 0..1 (got "
                               f"{reflection!r})", species=self.name)
        if reflection_backend not in BACKENDS:
            raise SpeciesError(f"reflection_backend must be one of {', '.join(BACKENDS)} (got {reflection_backend!r})",
                               species=self.name)
        self.reflection = float(reflection)
        if not isinstance(reflection_rows, int) or isinstance(reflection_rows, bool) or not 1 <= reflection_rows <= 8:
            raise SpeciesError(f"reflection_rows must be an integer in 1..8 (failed tasks one reflective child "
                               f"answers), got {reflection_rows!r}", species=self.name)
        self.reflection_rows = reflection_rows
        if not isinstance(graph_crossover, int | float) or isinstance(graph_crossover, bool) \
                or not 0.0 <= graph_crossover <= 1.0:
            raise SpeciesError(f"graph_crossover must be a probability in 0..1 (got {graph_crossover!r})",
                               species=self.name)
        self.graph_crossover = float(graph_crossover)
        self.variation: dict[str, int] = {}
        self.reflector = Reflector(reflection_backend)
        self._proposals: list[Proposal] = []
        self.run_seed = 0  # the run's seed (use_seed): with the generation, it draws the tasks
        self.seed_names, self.seed_genomes = _load_seeds(seeds)
        self.library = _library(self.seed_genomes) + _task_rows(train) + _harvested_rows(harvested)
        self.reflector.know([e for table, e in self.library if table == "command"])
        self.mutation_names = [k for k, w in weights.items() if w > 0]
        self.mutation_weights = [weights[k] for k in self.mutation_names]
        self.experts: dict[str, Any] | None = None  # the run config's `experts:` section

        tb = base.Toolbox()  # DEAP's registry of operators with their parameters; no creator
        tb.register("perturb_weights", mutation.perturb_weights)
        tb.register("replace_entry", mutation.replace_entry, library=self.library)
        tb.register("insert_entry", mutation.insert_entry, library=self.library)
        tb.register("delete_entry", mutation.delete_entry)
        tb.register("flip_typing_mode", mutation.flip_typing_mode, choices=tuple(typing_modes))
        tb.register("flip_content_source", mutation.flip_content_source, choices=tuple(content_sources))
        tb.register("change_chunk", mutation.change_chunk)
        tb.register("change_topk", mutation.change_topk)
        tb.register("change_max_iterations", mutation.change_max_iterations)
        for name, op in GRAPH_OPERATORS.items():
            tb.register(name, self._vary_graph, op)
        tb.register("cx_fields", crossover.cx_fields)
        tb.register("cx_experience", crossover.cx_experience)
        self.toolbox = tb

    def use_seed(self, seed: int) -> None:
        self.run_seed = seed

    def context(self, generation: int, products: Sequence[Any]) -> dict[str, Any]:
        """The generation's task draw: k train tasks by the run seed and the generation, the same
        for every individual of the generation (so that their pass rates compare)."""
        drawn = self.suite.sample(TRAIN, self.tasks_per_evaluation, f"{self.run_seed}:{generation}")
        return {"suite": self.suite.name, "split": TRAIN, "tasks": [t.id for t in drawn]}

    def check_stage(self, tasks: int | None, depth: int | None) -> str | None:
        """A cheap stage takes the first `tasks` of the generation's draw and/or types a
        tower `depth` levels high: never more of either, and less of one."""
        if tasks is not None and tasks > self.tasks_per_evaluation:
            return f"tasks: {tasks} is more than the full evaluation's {self.tasks_per_evaluation}"
        if depth is not None and depth > self.depth:
            return f"depth: {depth} is deeper than the full evaluation's {self.depth}"
        if (tasks or self.tasks_per_evaluation) == self.tasks_per_evaluation and (depth or self.depth) == self.depth:
            return (f"tasks: the cheap stage must be cheaper than the full evaluation ({self.tasks_per_evaluation} "
                    f"task(s), depth {self.depth}): give fewer tasks or a smaller depth")
        return None

    def stage(self, context: Any, tasks: int | None, depth: int | None) -> dict[str, Any]:
        draw = dict(context or self.context(0, ()))
        draw["tasks"] = list(draw["tasks"])[:tasks or len(draw["tasks"])]
        draw["depth"] = depth or self.depth
        draw["trajectory"] = False  # a stage's result is its metrics: no trajectory travels back
        return draw

    def metric_range(self, metric: str) -> tuple[float, float]:
        return RANGES.get(metric.split("@", 1)[0], super().metric_range(metric))

    def learn(self, genome: TowerGenome, tasks: Sequence[Mapping[str, Any]]) -> TowerGenome | None:
        """Credit assignment (the numeric channel of learning inside a run): a command row that
        served a task — its template, filled from that task's instruction, is a line H1 typed
        for it — has its weight multiplied by (1 + credit) for each task that passed and by
        (1 - credit) for each that failed (so a row typed for every task, right or wrong, loses);
        the children start from the result. Rows that served nothing keep their weight. None
        when `credit` is 0 or nothing changed.

        Reflection remembers the evaluation too (`populations.reflect`): its failed tasks under
        the genome and what its children start from, its passed ones as examples."""
        learned = self._credit(genome, tasks)
        if self.reflection > 0.0:
            hashes = [genome.hash()] + ([learned.hash()] if learned is not None else [])
            self.reflector.observe(hashes, attempts_of(tasks, self._instruction), genome.graph)
        return learned

    def _instruction(self, task_id: str) -> str | None:
        try:
            return self.suite.task(task_id).instruction
        except TowerError:
            return None

    def take_proposals(self) -> list[Proposal]:
        out, self._proposals = self._proposals, []
        return out

    def take_variation(self) -> dict[str, int]:
        out, self.variation = self.variation, {}
        return out

    def _count(self, what: str) -> None:
        self.variation[what] = self.variation.get(what, 0) + 1

    def _with_graph(self, genome: TowerGenome, nodes: Sequence[Mapping[str, Any]]) -> TowerGenome:
        """The genome with this graph, if it builds; else the genome as it was (counted refused)."""
        if list(nodes) == list(genome.nodes):
            return genome
        try:
            child = genome.replace(graph=tuple(nodes))
        except GenomeError:
            self._count("graph_refused")
            return genome
        self._count("graph_children")
        return child

    def _vary_graph(self, op: Any, genome: TowerGenome, r: Any) -> TowerGenome:
        return self._with_graph(genome, op(genome.nodes, r))

    def _credit(self, genome: TowerGenome, tasks: Sequence[Mapping[str, Any]]) -> TowerGenome | None:
        if self.credit <= 0.0:
            return None
        served: list[tuple[set[str], bool, dict[str, str]]] = []  # per task: lines typed, passed, the slots asked
        for t in tasks:
            try:
                instruction = self.suite.task(str(t["task_id"])).instruction
            except (TowerError, KeyError):
                continue  # a task not of this suite teaches nothing
            lines = {line.strip() for line in str(t.get("typed", "")).split("\n") if line.strip()}
            served.append((lines, bool(t.get("passed")), extract(instruction)))
        rows, changed = [], False
        for row in genome.experience.get("command", ()):
            wins = losses = 0
            for lines, passed, slots in served:
                line = fill(row.value, slots)
                if line is not None and line.strip() in lines:
                    wins, losses = (wins + 1, losses) if passed else (wins, losses + 1)
            if wins or losses:  # a row typed for everything loses: (1 + c)(1 - c) < 1
                factor = (1.0 + self.credit) ** wins * (1.0 - self.credit) ** losses
                weight = round(min(MAX_WEIGHT, max(MIN_WEIGHT, row.weight * factor)), 6)
                changed |= weight != row.weight
                row = replace(row, weight=weight)
            rows.append(row)
        if not changed:
            return None
        return replace(genome, experience={**genome.experience, "command": tuple(rows)})

    def verify(self) -> None:
        """The suite's reference solutions, typed into a sandboxed terminal, pass their checks
        (and a wrong command fails them); remembered per suite content (`checks.verify_once`)."""
        from harness_tower.checks import verify_once

        problems = verify_once(self.suite, isolation=self.isolation)
        if problems:
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise SpeciesError(f"suite {problems[0]}{more}", species=self.name)

    def held_out(self, split: str) -> list[HeldOut]:
        """The split's tasks in evaluations of k (the search's own size, so that each keeps
        the search's timeout), trajectories not kept."""
        ids = [t.id for t in self.suite.split(split)] if split != TRAIN else []
        k = self.tasks_per_evaluation
        return [HeldOut({"suite": self.suite.name, "split": split, "tasks": ids[i:i + k], "trajectory": False},
                        tuple(ids[i:i + k])) for i in range(0, len(ids), k)]

    def use_experts(self, experts: Mapping[str, Any] | None) -> None:
        """Kept as plain data: the endpoints are built where the evaluation runs, whose
        environment fills what the section leaves out (OPENAI_BASE_URL, ...)."""
        self.experts = dict(experts) if experts else None
        self.reflector.experts = self.experts  # reflection's model calls go where the run says, from the driver

    # --- metrics ------------------------------------------------------------------------
    def check_metric(self, metric: str) -> str | None:
        base_name, _, level = metric.partition("@")
        if base_name not in DIRECTIONS:
            return f"unknown metric {metric!r} for species tower (known: {', '.join(sorted(DIRECTIONS))})"
        if base_name in UNLEVELLED:
            if level:
                return f"{base_name} is one number per tower; drop '@{level}'"
            if base_name == "bytes_convergence" and self.depth < 3:
                return f"bytes_convergence is defined only for depth >= 3 (species.params.depth is {self.depth})"
            return None
        low = 2 if base_name in ("edit_distance", "bytes_ratio") else 1
        high = self.depth - 1 if base_name == "bytes_ratio" else self.depth
        if not level:
            return f"{base_name} is reported per level; name one, e.g. {base_name}@h{max(low, min(2, high))}"
        if not (level.startswith("h") and level[1:].isdigit() and low <= int(level[1:]) <= high):
            return (f"{metric}: level must be h{low}..h{high} for depth {self.depth}" if low <= high
                    else f"{base_name} needs a deeper tower than depth {self.depth}")
        return None

    def default_objectives(self) -> list[str]:
        level = f"h{min(2, self.depth)}"
        return [f"syntax_ratio@{level}", f"max_diff_len@{level}"]

    def default_constraints(self) -> list[Constraint]:
        return [Constraint(metric, eq=0.0) for metric in DEFAULT_CONSTRAINTS]

    # --- genome form ------------------------------------------------------------------
    def to_data(self, genome: TowerGenome) -> dict[str, Any]:
        return genome.to_dict()

    def canonical_json(self, genome: TowerGenome) -> str:
        return genome.canonical_json()  # the same text the tower's manifest hash is taken of

    def from_data(self, data: Any) -> TowerGenome:
        try:
            return TowerGenome.from_dict(data)
        except GenomeError as exc:
            raise SpeciesError(str(exc), species=self.name) from None

    def describe(self, genome: TowerGenome) -> str:
        n = sum(len(e) for e in genome.experience.values())
        return (f"{genome.content_source}/{genome.typing_mode} c{genome.chunk} k{genome.topk} "
                f"i{genome.max_iterations} e{n}" + (f" g{len(genome.nodes)}" if genome.graph is not None else ""))

    # --- variation ----------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> list[TowerGenome]:
        """The seed genomes first (in name order), then mutants of them, all distinct."""
        r = py_random(rng)
        out: list[TowerGenome] = []
        seen: set[str] = set()
        for g in self.seed_genomes:
            if len(out) < n and g.hash() not in seen:
                out.append(g)
                seen.add(g.hash())
        attempts = 0
        while len(out) < n and attempts < 50 * n:
            attempts += 1
            g = self._mutate_one(r.choice(self.seed_genomes), r)
            if g.hash() not in seen:
                out.append(g)
                seen.add(g.hash())
        return out

    def mate(self, pairs: Sequence[tuple[TowerGenome, TowerGenome]],
             rng: np.random.Generator) -> list[tuple[TowerGenome, TowerGenome]]:
        r = py_random(rng)
        children = []
        for a, b in pairs:
            c1, c2 = self.toolbox.cx_fields(a, b, r)
            c1, c2 = self.toolbox.cx_experience(c1, c2, r)
            if a.graph != b.graph and r.random() < self.graph_crossover:
                g1, g2 = graph.exchange(a.nodes, b.nodes, r)
                c1, c2 = self._with_graph(c1, g1), self._with_graph(c2, g2)
            children.append((c1, c2))
            if self.reflection > 0.0:
                for child in (c1, c2):
                    self.reflector.inherit(child.hash(), (a.hash(), b.hash()))
        return children

    def mutate(self, genomes: Sequence[TowerGenome], rng: np.random.Generator) -> list[TowerGenome]:
        r = py_random(rng)
        out = []
        for g in genomes:
            child = self._reflect(g, r) if self.reflection > 0.0 and r.random() < self.reflection else None
            out.append(child if child is not None else self._mutate_one(g, r))
        return out

    def _reflect(self, genome: TowerGenome, r: Any) -> TowerGenome | None:
        """A child with the rows reflection proposes for up to `reflection_rows` of the parent's
        failed tasks (or, when no row was proposed, the first graph edit); None (ordinary
        variation) when there is nothing to reflect on or every proposal is refused."""
        proposals = self.reflector.propose_for(genome.hash(), r.random(), genome.graph, self.reflection_rows)
        self._proposals.extend(proposals)
        taken = [p for p in proposals if p.row is not None]
        rows = [p.row for p in taken if p.row is not None]
        if rows:
            kept = distinct(rows + list(genome.experience.get("command", ())))[:MAX_ENTRIES]
            changes: dict[str, Any] = {"experience": {**genome.experience, "command": tuple(kept)}}
        else:
            taken = [p for p in proposals if p.edit][:1]
            if not taken:
                return None
            changes = {"graph": taken[0].graph}
        try:  # checked as any genome is: a row or graph that would not load never reaches an evaluation
            child = TowerGenome.from_dict(replace(genome, **changes).to_dict())
        except GenomeError as exc:
            for p in taken:
                p.row, p.graph, p.edit, p.reason = None, None, False, f"refused: {exc}"
            return None
        for p in taken:
            p.child = child.hash()
        return child

    def _mutate_one(self, genome: TowerGenome, r: Any) -> TowerGenome:
        k = 1 + sum(r.random() < 0.3 for _ in range(self.max_mutations - 1))
        for op in r.choices(self.mutation_names, weights=self.mutation_weights, k=k):
            try:
                genome = getattr(self.toolbox, op)(genome, r)
            except GenomeError:
                pass  # an operator never yields an invalid genome; keep the parent if one tried
        return genome

    # --- evaluation (on an actor) ---------------------------------------------------------
    def reference_timing(self, workdir: Path) -> float | None:
        return reference_tower(workdir, self.isolation)

    def evaluate(self, items: Sequence[EvalItem], *, workdir: Path, timeout: float,
                 run_id: str) -> list[Outcome]:
        from harness_tower.backends.relay import ExpertEndpoints
        from harness_tower.evaluate import evaluate as run_tower

        outcomes = []
        for it in items:
            out_dir = workdir / it.individual_id
            start = time.monotonic()
            try:
                # built here, where the evaluation runs: its environment fills what the run config leaves out
                experts = ExpertEndpoints.from_config(self.experts)
                draw = it.context or self.context(0, ())
                tasks = [self.suite.task(task_id) for task_id in draw["tasks"]]
                depth = int(draw.get("depth", self.depth))  # a cascade's cheap stage may be shallower
                res = run_tower(it.genome, depth=depth, out_dir=out_dir, seed=it.seed, timeout=timeout,
                                run_id=run_id, individual_id=it.individual_id, experts=experts,
                                isolation=self.isolation, tasks=tasks)
                bundle = None
                if draw.get("trajectory", True) and res.trajectory is not None \
                        and (Path(res.trajectory) / ".git").exists():
                    bundle = git_bundle(Path(res.trajectory))
                outcomes.append(Outcome(it.individual_id, res.status, dict(res.metrics), res.error,
                                        res.wall_seconds, bundle=bundle, isolation=res.isolation,
                                        tasks=[t.to_dict() for t in res.tasks]))
            except Exception as exc:  # noqa: BLE001 - the evaluation boundary: record, never raise
                outcomes.append(Outcome(it.individual_id, "failed", error=f"{type(exc).__name__}: {exc}",
                                        wall_seconds=time.monotonic() - start))
            finally:
                shutil.rmtree(out_dir, ignore_errors=True)
        return outcomes


# The reference tower (`reference_timing`): the same on every node whatever the run's own suite
REFERENCE_SEED, REFERENCE_TASK, REFERENCE_DEPTH = "literal_line", "print-hello-world", 2
REFERENCE_TIMEOUT = 60.0


def reference_tower(workdir: Path, isolation: str = "auto") -> float | None:
    """`avg_interval@h2` of a fixed tower: the `literal_line` seed at depth 2 on the built-in
    shell suite's `print-hello-world` (H2 types h1.py in ~320 sends; ~2 s). A tower's time is
    process starts, tmux round trips and git commits, which this measures as the evaluations
    do; None if it did not run through."""
    from harness_tower.evaluate import evaluate as run_tower

    _, (genome,) = _load_seeds([REFERENCE_SEED])
    task = load_suite("shell").task(REFERENCE_TASK)
    out_dir = Path(tempfile.mkdtemp(prefix="reference-", dir=workdir))
    try:
        res = run_tower(genome, depth=REFERENCE_DEPTH, out_dir=out_dir, timeout=REFERENCE_TIMEOUT,
                        run_id="reference", individual_id="reference", isolation=isolation, tasks=[task])
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    value = res.metrics.get(f"avg_interval@h{REFERENCE_DEPTH}") if res.status == "ok" else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) and value > 0 else None


def git_bundle(repo: Path) -> bytes:
    """The whole repository (all refs and HEAD) as `git bundle` bytes."""
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
        path = Path(tmp) / "trajectory.bundle"
        try:
            proc = subprocess.run(["git", "-C", str(repo), "bundle", "create", str(path), "--all"],
                                  capture_output=True, text=True, timeout=BUNDLE_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise OSError(f"git bundle of {repo} did not finish within {BUNDLE_TIMEOUT:.0f}s") from None
        if proc.returncode != 0:
            raise OSError(f"git bundle of {repo} failed: {proc.stderr.strip()[:300]}")
        return path.read_bytes()


def _load_seeds(seeds: Sequence[str] | None) -> tuple[list[str], list[TowerGenome]]:
    """Seed genomes by name (`populations/seeds/<name>.json`) or path; default: all of them."""
    if seeds is None:
        paths = sorted(SEEDS_DIR.glob("*.json"))
    else:
        paths = []
        for s in seeds:
            p = Path(s)
            if p.suffix != ".json" and not p.exists():
                p = SEEDS_DIR / f"{s}.json"
            paths.append(p)
    if not paths:
        raise SpeciesError(f"no seed genomes (looked in {SEEDS_DIR})", species="tower")
    genomes = []
    for p in paths:
        try:
            genomes.append(load_genome(str(p)))
        except GenomeError as exc:
            raise SpeciesError(f"seeds: {exc}", species="tower") from None
    return [p.stem for p in paths], genomes


MIN_WEIGHT, MAX_WEIGHT = 0.05, 20.0  # what credit assignment keeps a row's weight within

# Rows a task level may learn to want, whatever the task: what to do when the screen shows an error.
RECOVERY_ROWS = tuple(("decision", ExperienceEntry(shown, "an error on the screen", "text:fix it"))
                      for shown in ("No such file or directory", "Permission denied", "command not found",
                                    "cannot open", "not found"))


def _task_rows(tasks: Sequence[Task]) -> list[tuple[str, ExperienceEntry]]:
    """Command rows learned from the train split's reference solutions, their values generalised
    into slot templates (`wc -l < {file}`): one row per task (its lines joined with `&&`); a
    recovery task (tier 5) gives its first attempt and, as `fix it`, what finally worked. Only
    the train split is read: validation and test stay unseen by the search."""
    out: list[tuple[str, ExperienceEntry]] = []
    for task in tasks:
        found = extract(task.instruction)
        lines = [generalise(line, found) for line in task.solution]
        if task.tier == 5:
            out.append(("command", ExperienceEntry(task.instruction, f"{task.id}: first try", lines[0])))
            out.append(("command", ExperienceEntry("fix it " + task.instruction, f"{task.id}: the fix", lines[-1])))
        else:
            out.append(("command", ExperienceEntry(task.instruction, f"{task.id}: reference", " && ".join(lines))))
    return out + list(RECOVERY_ROWS)


def _harvested_rows(paths: Sequence[str]) -> list[tuple[str, ExperienceEntry]]:
    """The rows of experience files made by `evolve harvest` from real sessions."""
    from harness_tower.harvest import HarvestError, load_experience

    if isinstance(paths, str):
        raise SpeciesError("harvested: give a list of experience files (from `evolve harvest`)", species="tower")
    out: list[tuple[str, ExperienceEntry]] = []
    for path in paths:
        try:  # checked as a genome's experience is: a malformed row is one line naming it
            raw = load_experience(path)["experience"]
            given = {table: rows for table, rows in raw.items() if rows}
            probe = {"decision": [e.to_list() for e in default_experience()["decision"]], **given}
            rows = TowerGenome.from_dict({"experience": probe}).experience
        except (HarvestError, GenomeError, AttributeError) as exc:
            raise SpeciesError(f"harvested: {path}: {exc}", species="tower") from None
        out.extend((table, e) for table, entries in sorted(rows.items()) if table in given for e in entries)
    return out


def _library(genomes: Sequence[TowerGenome]) -> list[tuple[str, ExperienceEntry]]:
    """Every distinct (table, entry) of the seeds, in a fixed order: donors for mutation."""
    seen: set[tuple[str, ExperienceEntry]] = set()
    out = []
    for g in genomes:
        for table, entries in sorted(g.experience.items()):
            for e in entries:
                if (table, e) not in seen:
                    seen.add((table, e))
                    out.append((table, e))
    return out
