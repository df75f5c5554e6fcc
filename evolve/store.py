"""The run store: one DuckDB file per run directory (`RUN_DIR/store.duckdb`).

The driver is the only writer. A generation is committed in one transaction: its
individuals, their evaluations, the surviving population's fronts, the generation's
statistics and (now and then) the engine checkpoint used by `--resume`. Generations
cheaper than a second may share one transaction; none is ever stored in part. Evaluations
that finish while a generation is still running are staged (one small transaction each) so that a killed
driver loses none of them; the generation's commit moves them into `evaluations`.

A run may evolve several species side by side (SPEC §7): each has its own population,
objectives, constraints (`run_species`), fronts and generation rows (`generations.species`),
all in the same tables; individual ids are unique within the run.

Views: `pareto_front` (latest non-dominated feasible set per run/species), `metrics_long`
(one row per metric), and the table macro `lineage(individual_id)` (recursive ancestry).

Reading a live run: DuckDB lets one process write a file and then refuses every other
process, readers included. So the writer publishes what it has committed — after each
commit, a checkpoint, a copy to a temporary name and an atomic rename to `store.read.duckdb`
(`Store.publish`) — and a reader that finds the store locked opens that copy instead
(`Store.open(read_only=True)`; `Store.live` and `live_note` say so). The copy goes when its
writer closes the store; a copy a killed writer left is never read (the store is unlocked
then) and the next writer removes it.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from evolve.errors import EvolveError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from duckdb import DuckDBPyConnection

STORE_FILE = "store.duckdb"
READ_COPY = "store.read.duckdb"  # what the writer has committed, for readers while it holds STORE_FILE
WRITE_WAIT = 2.0  # seconds a writer waits for readers of the store, who hold it only for a moment

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       VARCHAR PRIMARY KEY,
    name         VARCHAR NOT NULL,
    species      VARCHAR NOT NULL,
    seed         UBIGINT NOT NULL,
    generations  INTEGER NOT NULL,          -- planned, including the initial one
    objectives   JSON NOT NULL,             -- [{metric, direction, ref}]
    constraints  JSON NOT NULL,             -- [{metric, le, ge, eq}]
    config       JSON NOT NULL,
    versions     JSON NOT NULL,
    status       VARCHAR NOT NULL,          -- running | finished | interrupted | failed (never started) |
                                            -- stopped (a budget was reached)
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS individuals (
    run_id        VARCHAR NOT NULL,
    individual_id VARCHAR NOT NULL,
    species       VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,
    hash          VARCHAR NOT NULL,         -- blake2b of the canonical genome JSON
    genome        JSON NOT NULL,
    parents       VARCHAR[] NOT NULL,
    seed          UBIGINT NOT NULL,
    origin        VARCHAR NOT NULL,         -- sample | crossover+mutation | mutation
    PRIMARY KEY (run_id, individual_id)
);
CREATE TABLE IF NOT EXISTS evaluations (
    run_id        VARCHAR NOT NULL,
    individual_id VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,
    status        VARCHAR NOT NULL CHECK (status IN ('ok', 'failed', 'timeout', 'invalid')),
    objectives    DOUBLE[] NOT NULL,        -- natural units, in the order of runs.objectives
    metrics       JSON NOT NULL,            -- every metric the evaluation reported
    constraints   DOUBLE[] NOT NULL,        -- pymoo G (<= 0 feasible) per runs.constraints
    cv            DOUBLE NOT NULL,          -- total constraint violation (failures included)
    feasible      BOOLEAN NOT NULL,
    note          VARCHAR,                  -- why infeasible
    wall_seconds  DOUBLE NOT NULL,
    node          VARCHAR NOT NULL,         -- Ray node id that ran it
    trajectory    VARCHAR,                  -- path under the run directory
    error         VARCHAR,
    attempts      INTEGER NOT NULL,
    result_bytes  BIGINT NOT NULL,          -- trajectory bundle bytes sent back through Ray
    artifact      VARCHAR,                  -- files kept under the run directory (a checkpoint)
    isolation     VARCHAR,                  -- sandbox isolation it ran under (bwrap | process; towers)
    reused_from   VARCHAR,                  -- the same genome, evaluated earlier with the same context:
                                            -- its result, not evaluated again
    PRIMARY KEY (run_id, individual_id)
);
CREATE TABLE IF NOT EXISTS fronts (
    run_id        VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,
    individual_id VARCHAR NOT NULL,
    rank          INTEGER NOT NULL,         -- 0 = non-dominated (constrained domination)
    crowding      DOUBLE,                   -- NULL for infeasible individuals
    PRIMARY KEY (run_id, generation, individual_id)
);
CREATE TABLE IF NOT EXISTS generations (
    run_id        VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,
    hypervolume   DOUBLE,
    evaluations   INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    reused        INTEGER NOT NULL,         -- staged before a resume, not evaluated again
    duplicates    INTEGER NOT NULL,         -- genomes evaluated before in the run: their results kept
    population    INTEGER NOT NULL,
    front_size    INTEGER NOT NULL,
    wall_seconds  DOUBLE NOT NULL,
    committed_at  TIMESTAMP NOT NULL,
    species       VARCHAR NOT NULL,         -- one row per species and generation
    variation     JSON NOT NULL DEFAULT '{}', -- what variation did, e.g. graph children made and refused
    objective_stats JSON,                   -- [{metric, n, min, mean, max}] over the generation's
                                            -- evaluations, natural units (evolve.genstats)
    front_points  INTEGER,                  -- distinct objective vectors among the front_size members
    failures      JSON,                     -- {reason: count} of evaluations that were not ok
    PRIMARY KEY (run_id, species, generation)
);
-- stores made before these columns existed get them (NULL in the generations already there)
ALTER TABLE generations ADD COLUMN IF NOT EXISTS objective_stats JSON;
ALTER TABLE generations ADD COLUMN IF NOT EXISTS front_points INTEGER;
ALTER TABLE generations ADD COLUMN IF NOT EXISTS failures JSON;
ALTER TABLE generations ADD COLUMN IF NOT EXISTS variation JSON DEFAULT '{}';
-- evaluation.cascade: individuals the cheap stage kept from the full evaluation, what the stage
-- cost and the full evaluation seconds it saved (gated × mean full seconds; evolve.cascade)
ALTER TABLE generations ADD COLUMN IF NOT EXISTS gated INTEGER DEFAULT 0;
ALTER TABLE generations ADD COLUMN IF NOT EXISTS stage_seconds DOUBLE DEFAULT 0;
ALTER TABLE generations ADD COLUMN IF NOT EXISTS gate_saved DOUBLE;
CREATE TABLE IF NOT EXISTS run_species (
    run_id        VARCHAR NOT NULL,
    species       VARCHAR NOT NULL,
    position      INTEGER NOT NULL,         -- order in the config
    population    INTEGER NOT NULL,
    objectives    JSON NOT NULL,            -- [{metric, direction, ref}], order of evaluations.objectives
    constraints   JSON NOT NULL,            -- [{metric, le, ge, eq}]
    params        JSON NOT NULL,
    PRIMARY KEY (run_id, species)
);
CREATE SEQUENCE IF NOT EXISTS event_seq;
CREATE TABLE IF NOT EXISTS events (
    event_id      BIGINT PRIMARY KEY DEFAULT nextval('event_seq'),
    run_id        VARCHAR NOT NULL,
    at_time       TIMESTAMP NOT NULL,
    generation    INTEGER,
    kind          VARCHAR NOT NULL,
    individual_id VARCHAR,
    message       VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS task_results (
    run_id        VARCHAR NOT NULL,
    individual_id VARCHAR NOT NULL,
    split         VARCHAR NOT NULL,         -- train (the search's sample) | validation | test
    task_id       VARCHAR NOT NULL,         -- a task of the species' suite
    generation    INTEGER NOT NULL,         -- the generation it was evaluated in (or after)
    tier          INTEGER,                  -- NULL for a task its evaluation never reported
    passed        BOOLEAN NOT NULL,
    reason        VARCHAR NOT NULL,         -- why it passed or failed, one line
    typed         VARCHAR NOT NULL,         -- what the task level typed for it
    seconds       DOUBLE NOT NULL,
    PRIMARY KEY (run_id, individual_id, split, task_id)
);
CREATE TABLE IF NOT EXISTS held_out (
    run_id        VARCHAR NOT NULL,
    individual_id VARCHAR NOT NULL,
    split         VARCHAR NOT NULL,         -- validation (every new front member) | test (on request)
    generation    INTEGER NOT NULL,         -- the generation after which it was evaluated
    status        VARCHAR NOT NULL,         -- ok, or the worst status of its evaluations
    passed        INTEGER NOT NULL,
    tasks         INTEGER NOT NULL,         -- the whole split
    pass_rate     DOUBLE NOT NULL,
    error         VARCHAR,
    wall_seconds  DOUBLE NOT NULL,
    reused_from   VARCHAR,                  -- an individual with the same genome, whose result this is
    PRIMARY KEY (run_id, individual_id, split)
);
CREATE TABLE IF NOT EXISTS proposals (
    run_id        VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,         -- the generation whose offspring it was made for
    species       VARCHAR NOT NULL,
    seq           INTEGER NOT NULL,         -- order within the generation
    parent        VARCHAR NOT NULL,         -- hash of the genome reflected on
    task_id       VARCHAR NOT NULL,         -- the failed task it answers
    backend       VARCHAR NOT NULL,         -- retrieval | openai | accordion
    prompt        VARCHAR NOT NULL,
    answer        VARCHAR NOT NULL,
    seconds       DOUBLE NOT NULL,
    tokens        INTEGER NOT NULL,
    row           JSON,                     -- the proposed experience row; NULL when refused or a graph edit
    graph         JSON,                     -- a graph edit: the proposed task-level nodes (null: the default graph)
    edit          BOOLEAN NOT NULL DEFAULT false, -- the proposal is a graph edit
    reason        VARCHAR NOT NULL,         -- what it became, or why it was refused
    child         VARCHAR,                  -- hash of the child it made
    used          BOOLEAN NOT NULL,         -- that child was among the offspring evaluated
    PRIMARY KEY (run_id, species, generation, seq)
);
ALTER TABLE proposals ADD COLUMN IF NOT EXISTS graph JSON;
ALTER TABLE proposals ADD COLUMN IF NOT EXISTS edit BOOLEAN DEFAULT false;
CREATE TABLE IF NOT EXISTS replicates (
    run_id        VARCHAR NOT NULL,
    individual_id VARCHAR NOT NULL,
    replicate     INTEGER NOT NULL,         -- k >= 1: its evaluations row is sample 0 (evolve.replicates)
    generation    INTEGER NOT NULL,         -- the generation after which it was evaluated
    status        VARCHAR NOT NULL,         -- ok | failed | timeout | invalid: a failure is kept and counted
    objectives    DOUBLE[] NOT NULL,        -- natural units (NULL where missing)
    metrics       JSON NOT NULL,
    cv            DOUBLE NOT NULL,
    wall_seconds  DOUBLE NOT NULL,
    node          VARCHAR NOT NULL,
    error         VARCHAR,
    PRIMARY KEY (run_id, individual_id, replicate)
);
CREATE TABLE IF NOT EXISTS stages (
    run_id        VARCHAR NOT NULL,
    individual_id VARCHAR NOT NULL,
    stage         VARCHAR NOT NULL,         -- cheap (evaluation.cascade) | full (it passed the gate)
    generation    INTEGER NOT NULL,
    status        VARCHAR NOT NULL,         -- ok | failed | timeout | invalid
    metrics       JSON NOT NULL,
    seconds       DOUBLE NOT NULL,
    passed        BOOLEAN NOT NULL,         -- the gate let it on (full: true)
    PRIMARY KEY (run_id, individual_id, stage)
);
CREATE TABLE IF NOT EXISTS standing (
    run_id        VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,
    individual_id VARCHAR NOT NULL,
    standing      VARCHAR NOT NULL,         -- member (the reported front) | pending (not yet proven)
    samples       INTEGER NOT NULL,         -- evaluations of it so far (1 + replicates)
    failed        INTEGER NOT NULL,         -- of those, not ok
    objectives    DOUBLE[] NOT NULL,        -- mean over the samples, natural units
    spread        DOUBLE[] NOT NULL,        -- standard deviation over the samples (inf: one failed)
    PRIMARY KEY (run_id, generation, individual_id)
);
CREATE TABLE IF NOT EXISTS islands (
    run_id        VARCHAR NOT NULL,
    individual_id VARCHAR NOT NULL,
    island        INTEGER NOT NULL,         -- where it was born (islands.count > 1; evolve.islands)
    PRIMARY KEY (run_id, individual_id)
);
CREATE TABLE IF NOT EXISTS island_fronts (
    run_id        VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,
    island        INTEGER NOT NULL,
    individual_id VARCHAR NOT NULL,         -- a member of the island's surviving population
    rank          INTEGER NOT NULL,         -- within the island (fronts: over every island)
    crowding      DOUBLE,
    PRIMARY KEY (run_id, generation, island, individual_id)
);
CREATE TABLE IF NOT EXISTS migrations (
    run_id        VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,         -- after which it moved
    individual_id VARCHAR NOT NULL,
    from_island   INTEGER NOT NULL,
    to_island     INTEGER NOT NULL,         -- from_island + 1 along the ring
    PRIMARY KEY (run_id, generation, individual_id, to_island)
);
CREATE TABLE IF NOT EXISTS spend (
    run_id        VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,         -- the run's spend once this generation was done
    evaluations   BIGINT NOT NULL,          -- evaluations run, every session (evolve.budget)
    wall_seconds  DOUBLE NOT NULL,          -- engine time, every session
    expert_tokens JSON NOT NULL,            -- {endpoint: prompt + completion tokens}
    budget        JSON NOT NULL,            -- the limits in force: {evaluations, wall_seconds,
                                            -- expert_tokens.<endpoint>}
    stopped_by    VARCHAR,                  -- the limit this generation reached (the run stopped)
    PRIMARY KEY (run_id, generation)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id        VARCHAR PRIMARY KEY,
    generation    INTEGER NOT NULL,         -- the next generation to ask for
    state         BLOB NOT NULL,            -- pickled engine state (algorithm + RNGs); later
                                            -- generations are replayed from the rows above
    versions      JSON NOT NULL,
    saved_at      TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS staged (
    run_id        VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,
    individual_id VARCHAR NOT NULL,
    hash          VARCHAR NOT NULL,
    outcome       BLOB NOT NULL,            -- pickled evolve.evaluated.Evaluated (the driver's record)
    PRIMARY KEY (run_id, individual_id)
);
"""

VIEWS = """
CREATE OR REPLACE VIEW pareto_front AS
WITH latest AS (
    SELECT f.run_id, i.species, max(f.generation) AS generation
    FROM fronts f JOIN individuals i ON i.run_id = f.run_id AND i.individual_id = f.individual_id
    GROUP BY f.run_id, i.species)
SELECT f.run_id, i.species, f.generation, f.individual_id, i.hash, e.objectives, f.crowding,
       e.metrics, e.node, e.trajectory, i.parents, i.genome
FROM fronts f
JOIN individuals i ON i.run_id = f.run_id AND i.individual_id = f.individual_id
JOIN latest l ON f.run_id = l.run_id AND i.species = l.species AND f.generation = l.generation
JOIN evaluations e ON e.run_id = f.run_id AND e.individual_id = f.individual_id
WHERE f.rank = 0 AND e.feasible;

CREATE OR REPLACE VIEW metrics_long AS
SELECT e.run_id, e.individual_id, e.generation, e.status, j.key AS metric,
       split_part(j.key, '@', 1) AS name,
       CASE WHEN contains(j.key, '@') THEN split_part(j.key, '@', 2) END AS level,
       TRY_CAST(j.value ->> '$' AS DOUBLE) AS value, i.species
FROM evaluations e
JOIN individuals i ON i.run_id = e.run_id AND i.individual_id = e.individual_id,
     json_each(e.metrics) AS j;

CREATE OR REPLACE MACRO lineage(ind) AS TABLE
-- Breadth first over the parent edges, each ancestor kept once at its smallest depth: a step
-- expands only the ancestors the previous step found, and leaves out any already found
-- (`recurring.anc`, all so far). The cost follows the ancestry, not the number of paths to
-- it (with crossover, exponential in the generations).
WITH RECURSIVE anc(run_id, individual_id, depth) USING KEY (run_id, individual_id) AS (
    SELECT run_id, individual_id, 0 FROM individuals WHERE individual_id = ind
    UNION
    SELECT e.run_id, e.parent, min(a.depth) + 1
    FROM anc a
    JOIN (SELECT run_id, individual_id, unnest(parents) AS parent FROM individuals) e
      ON e.run_id = a.run_id AND e.individual_id = a.individual_id
    WHERE NOT EXISTS (SELECT 1 FROM recurring.anc r WHERE r.run_id = e.run_id AND r.individual_id = e.parent)
    GROUP BY e.run_id, e.parent
)
SELECT a.depth, a.individual_id, i.generation, i.origin, i.parents, i.hash, i.run_id
FROM anc a JOIN individuals i ON i.run_id = a.run_id AND i.individual_id = a.individual_id
ORDER BY a.depth, a.individual_id;
"""


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def metrics_json(metrics: Mapping[str, object]) -> str:
    """Strict JSON: non-finite floats become strings ("inf"), booleans 0/1."""
    clean: dict[str, object] = {}
    for k, v in metrics.items():
        if isinstance(v, bool):
            v = int(v)
        elif isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        clean[k] = v
    return _METRICS_JSON.encode(clean)


_METRICS_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # json.dumps builds one per call


# --- rows: one dataclass per table, its fields named as the table's columns ----------------------
# `run_id` is no field: every row of a commit belongs to the run being committed. Plain (not
# frozen) slotted dataclasses: a generation of ZDT1 builds hundreds of rows, and frozen
# dataclasses pay an object.__setattr__ per field.
@dataclass(slots=True)
class IndividualRow:
    individual_id: str
    species: str
    generation: int
    hash: str
    genome: str  # canonical JSON
    parents: list[str]
    seed: int
    origin: str


@dataclass(slots=True)
class EvaluationRow:
    individual_id: str
    generation: int
    status: str
    objectives: list[float | None]  # natural units
    metrics: str  # strict JSON (`metrics_json`)
    constraints: list[float]  # pymoo G of the configured constraints
    cv: float
    feasible: bool
    note: str | None
    wall_seconds: float
    node: str
    trajectory: str | None
    error: str | None
    attempts: int
    result_bytes: int
    artifact: str | None
    isolation: str | None
    reused_from: str | None = None


@dataclass(slots=True)
class FrontRow:
    generation: int
    individual_id: str
    rank: int
    crowding: float | None


@dataclass(slots=True)
class GenerationRow:
    generation: int
    species: str
    hypervolume: float | None
    evaluations: int
    failed: int
    reused: int
    population: int
    front_size: int
    wall_seconds: float
    duplicates: int = 0
    variation: str = "{}"  # JSON: counts from `Species.take_variation`
    objective_stats: str = "[]"  # JSON (`evolve.genstats`)
    front_points: int = 0
    failures: str = "{}"  # JSON {reason: count}
    gated: int = 0  # evaluation.cascade: kept from the full evaluation by the cheap stage
    stage_seconds: float = 0.0  # the cheap stages' evaluation seconds
    gate_saved: float | None = 0.0  # full seconds not spent: gated × mean full seconds (None: no mean yet)


@dataclass(slots=True)
class TaskResultRow:
    individual_id: str
    split: str
    task_id: str
    generation: int
    tier: int | None
    passed: bool
    reason: str
    typed: str
    seconds: float


@dataclass(slots=True)
class HeldOutRow:
    individual_id: str
    split: str
    generation: int
    status: str
    passed: int
    tasks: int
    pass_rate: float
    error: str | None
    wall_seconds: float
    reused_from: str | None


@dataclass(slots=True)
class ProposalRow:
    generation: int
    species: str
    seq: int
    parent: str
    task_id: str
    backend: str
    prompt: str
    answer: str
    seconds: float
    tokens: int
    row: str | None  # JSON
    reason: str
    child: str | None
    used: bool
    graph: str | None = None  # JSON: a graph edit's nodes
    edit: bool = False


@dataclass(slots=True)
class ReplicateRow:
    individual_id: str
    replicate: int
    generation: int
    status: str
    objectives: list[float | None]
    metrics: str  # strict JSON
    cv: float
    wall_seconds: float
    node: str
    error: str | None


@dataclass(slots=True)
class StageRow:
    individual_id: str
    stage: str
    generation: int
    status: str
    metrics: str  # strict JSON
    seconds: float
    passed: bool


@dataclass(slots=True)
class StandingRow:
    generation: int
    individual_id: str
    standing: str
    samples: int
    failed: int
    objectives: list[float]
    spread: list[float]


@dataclass(slots=True)
class IslandRow:
    individual_id: str
    island: int


@dataclass(slots=True)
class IslandFrontRow:
    generation: int
    island: int
    individual_id: str
    rank: int
    crowding: float | None


@dataclass(slots=True)
class MigrationRow:
    generation: int
    individual_id: str
    from_island: int
    to_island: int


@dataclass(slots=True)
class SpendRow:
    generation: int
    evaluations: int
    wall_seconds: float
    expert_tokens: str  # JSON {endpoint: tokens}
    budget: str  # JSON {limit name: limit}
    stopped_by: str | None


@dataclass(frozen=True)
class StagedRow:
    generation: int
    individual_id: str
    hash: str
    outcome: bytes  # the driver's pickled record of the evaluation


@dataclass(frozen=True)
class SavedState:
    """A checkpoint as stored: the engine state to resume from and who wrote it."""

    generation: int  # the next generation to ask for
    state: bytes
    versions: Mapping[str, str]


# What DuckDB cannot infer from the Python value bound to a column (by column name).
CASTS = {"genome": "::JSON", "parents": "::VARCHAR[]", "seed": "::UBIGINT", "objectives": "::DOUBLE[]",
         "metrics": "::JSON", "constraints": "::DOUBLE[]", "crowding": "::DOUBLE", "hypervolume": "::DOUBLE",
         "row": "::JSON", "objective_stats": "::JSON", "failures": "::JSON", "expert_tokens": "::JSON",
         "spread": "::DOUBLE[]", "budget": "::JSON", "stopped_by": "::VARCHAR"}


@dataclass
class GenerationRecord:
    """Everything one species' generation commits: its `generations` row and the rows it brings."""

    row: GenerationRow
    individuals: list[IndividualRow]
    evaluations: list[EvaluationRow]
    fronts: list[FrontRow]  # the surviving population
    tasks: list[TaskResultRow] = field(default_factory=list)  # per task of every evaluation on tasks
    held_out: list[HeldOutRow] = field(default_factory=list)  # new front members on the validation split
    proposals: list[ProposalRow] = field(default_factory=list)  # reflective mutation's, for this offspring
    spend: list[SpendRow] = field(default_factory=list)  # the run's spend after the generation (first species')
    replicates: list[ReplicateRow] = field(default_factory=list)  # front members evaluated again
    stages: list[StageRow] = field(default_factory=list)  # evaluation.cascade: each stage that ran
    standing: list[StandingRow] = field(default_factory=list)  # the reported front under the guardrail
    islands: list[IslandRow] = field(default_factory=list)  # the island each newcomer was born on
    island_fronts: list[IslandFrontRow] = field(default_factory=list)  # each island's survivors, own ranks
    migrations: list[MigrationRow] = field(default_factory=list)  # along the ring after the generation


# the tables a generation's record fills, each from its list of rows (GenerationRecord field)
GENERATION_ROWS = (("individuals", "individuals"), ("evaluations", "evaluations"), ("fronts", "fronts"),
                   ("task_results", "tasks"), ("held_out", "held_out"), ("proposals", "proposals"),
                   ("spend", "spend"), ("replicates", "replicates"), ("standing", "standing"), ("stages", "stages"),
                   ("islands", "islands"), ("island_fronts", "island_fronts"), ("migrations", "migrations"))


class Store:
    """A connection to one run's DuckDB file; open with `Store.open(run_dir)`."""

    def __init__(self, con: DuckDBPyConnection, path: Path, read_only: bool, *, live: bool = False) -> None:
        self.con = con
        self.path = path  # the file open: STORE_FILE, or READ_COPY when `live`
        self.read_only = read_only
        self.live = live  # reading the copy a running writer published: its last committed state
        self._source: int | None = None  # the store file, read by `publish`

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, run_dir: str | Path, *, read_only: bool = False, create: bool = False) -> Store:
        """The run's store. A reader gets the published copy while a writer holds the store;
        a writer waits a moment for readers, then says who holds it."""
        path = Path(run_dir) / STORE_FILE
        if not create and not path.exists():
            raise EvolveError(f"{run_dir}: no run store here ({STORE_FILE} is missing)")
        if read_only:
            return cls._open_reader(path)
        store = cls(_connect(path, read_only=False, wait=WRITE_WAIT), path, False)
        # a copy an earlier writer left behind (killed before it closed) is stale from now on
        (path.parent / READ_COPY).unlink(missing_ok=True)
        store.con.execute(SCHEMA)
        store.con.execute(VIEWS)
        return store

    @classmethod
    def _open_reader(cls, path: Path) -> Store:
        copy = path.parent / READ_COPY
        for attempt in range(3):  # the writer may close (and remove its copy) between two tries
            try:
                return cls(_connect(path, read_only=True), path, True)
            except StoreLocked as locked:
                if copy.exists():
                    try:
                        return cls(_connect(copy, read_only=True), copy, True, live=True)
                    except EvolveError:
                        if copy.exists():
                            raise
                elif attempt == 2:
                    raise EvolveError(f"{locked}; it has published no read copy ({READ_COPY}) yet: a run "
                                      "publishes one as it starts and after each generation it commits") from None
                time.sleep(0.05)
        raise EvolveError(f"{path}: the store and its read copy kept changing while being opened; try again")

    def publish(self) -> None:
        """Let readers see what is committed: checkpoint (the WAL folded into the file, so
        the file alone holds it), copy, rename over the last copy (atomic: a reader opens the
        old copy or the new one, never a part). Nothing writes in between: the writer is this
        one connection, and every transaction of it has ended.

        The copy reads through a descriptor opened once, when the first copy is made, and
        closed after DuckDB's: DuckDB's lock on the file is a POSIX record lock, which a
        process loses as soon as it closes *any* descriptor of the file (shutil.copyfile
        would open and close one, and leave the store unlocked)."""
        if self.read_only:
            return
        self.con.execute("CHECKPOINT")
        if self._source is None:
            self._source = os.open(self.path, os.O_RDONLY)
        copy = self.path.parent / READ_COPY
        tmp = copy.with_name(READ_COPY + ".tmp")
        try:
            size = os.fstat(self._source).st_size
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                done = 0
                while done < size:  # offsets given: the shared descriptor's position never moves
                    sent = os.sendfile(out, self._source, done, size - done)
                    if sent == 0:
                        break
                    done += sent
            finally:
                os.close(out)
            os.replace(tmp, copy)
        except OSError:  # readers keep the last copy; the run itself goes on
            tmp.unlink(missing_ok=True)

    def live_note(self) -> str | None:
        """One line for a reader of a live run: which generation it shows, from when."""
        if not self.live:
            return None
        last = self.con.execute("SELECT max(generation) FROM generations").fetchall()[0][0]
        when = datetime.fromtimestamp(self.path.stat().st_mtime).strftime("%H:%M:%S")
        what = "no generation committed yet" if last is None else f"generation {last}"
        return f"live: {what} (the copy its running driver published at {when}, {READ_COPY})"

    def close(self) -> None:
        self.con.close()
        publishing = self._source is not None
        if self._source is not None:  # after DuckDB's: its lock went with its own descriptor
            os.close(self._source)
            self._source = None
        if publishing:  # readers open the store itself from now on
            for name in (READ_COPY, READ_COPY + ".tmp"):  # (.tmp: a copy cut short by an interrupt)
                (self.path.parent / name).unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs -----------------------------------------------------------------------------
    def create_run(self, *, run_id: str, name: str, species: str, seed: int, generations: int,
                   objectives: Sequence[Mapping[str, object]], constraints: Sequence[Mapping[str, object]],
                   config: Mapping[str, object], versions: Mapping[str, str],
                   parts: Sequence[SpeciesRow] = ()) -> None:
        """The run's row, and one `run_species` row per species of the run."""
        t = now()
        with self._transaction():
            self.con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                [run_id, name, species, seed, generations, json.dumps(list(objectives)),
                 json.dumps(list(constraints)), json.dumps(config), json.dumps(dict(versions)), t, t])
            for k, p in enumerate(parts):
                self.con.execute("INSERT INTO run_species VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 [run_id, p.species, k, p.population, json.dumps(list(p.objectives)),
                                  json.dumps(list(p.constraints)), json.dumps(dict(p.params))])

    def species(self) -> list[dict[str, Any]]:
        """The run's species in config order: {species, population, objectives, constraints}
        (objectives and constraints as stored: JSON lists of objects, hence Any)."""
        run = self.run()
        rows = self.con.execute("""SELECT species, population, objectives, constraints FROM run_species
                                   WHERE run_id = ? ORDER BY position""", [run["run_id"]]).fetchall()
        return [{"species": r[0], "population": r[1], "objectives": json.loads(r[2]),
                 "constraints": json.loads(r[3])} for r in rows]

    def run(self) -> dict[str, Any]:
        """The run's row by column name, its JSON columns decoded (hence Any)."""
        row = self.con.execute("SELECT * FROM runs ORDER BY created_at LIMIT 1").fetchone()
        if row is None:
            raise EvolveError(f"{self.path}: the store holds no run")
        cols = [d[0] for d in self.con.description or ()]
        info = dict(zip(cols, row))
        for key in ("objectives", "constraints", "config", "versions"):
            info[key] = json.loads(info[key])
        return info

    def set_status(self, run_id: str, status: str) -> None:
        self.con.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", [status, now(), run_id])
        self.publish()

    def event(self, run_id: str, kind: str, message: str, *, generation: int | None = None,
              individual_id: str | None = None) -> None:
        self.con.execute(
            "INSERT INTO events (run_id, at_time, generation, kind, individual_id, message) VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, now(), generation, kind, individual_id, message])

    # --- staging (evaluations finished inside a running generation) -----------------------
    def stage(self, run_id: str, rows: Sequence[StagedRow]) -> None:
        """Keep finished evaluations of a running generation."""
        if not rows:
            return
        with self._transaction():
            self.con.executemany("INSERT OR REPLACE INTO staged VALUES (?, ?, ?, ?, ?)",
                                 [[run_id, r.generation, r.individual_id, r.hash, r.outcome] for r in rows])

    def staged(self, run_id: str, generation: int) -> list[StagedRow]:
        rows = self.con.execute(
            "SELECT individual_id, hash, outcome FROM staged WHERE run_id = ? AND generation = ?",
            [run_id, generation]).fetchall()
        return [StagedRow(generation, r[0], r[1], bytes(r[2])) for r in rows]

    def last_staged(self, run_id: str) -> int | None:
        """The latest generation with staged evaluations (from before a restart), if any."""
        row = self.con.execute("SELECT max(generation) FROM staged WHERE run_id = ?", [run_id]).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # --- generations ------------------------------------------------------------------------
    def commit_generations(self, run_id: str, recs: Sequence[GenerationRecord],
                           checkpoint: SavedState | None = None) -> None:
        """Write whole generations in one transaction — all of each, or none of any — with
        the checkpoint taken after the last of them, if one was, and drop what they staged.

        Several generations share a transaction only when they are cheap (see `Cadence`):
        a statement's fixed cost then counts once instead of once per generation.
        """
        if not recs:
            return
        constants = {"run_id": run_id}
        with self._transaction():
            for table, rows in GENERATION_ROWS:
                self._insert(table, [r for rec in recs for r in getattr(rec, rows)], constants)
            self._insert("generations", [rec.row for rec in recs], {**constants, "committed_at": now()})
            if checkpoint is not None:
                self.con.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?)",
                                 [run_id, checkpoint.generation, checkpoint.state,
                                  json.dumps(dict(checkpoint.versions)), now()])
            self.con.execute("DELETE FROM staged WHERE run_id = ? AND generation <= ?",
                             [run_id, max(rec.row.generation for rec in recs)])
        self.publish()

    def replace_held_out(self, run_id: str, held: Sequence[HeldOutRow], tasks: Sequence[TaskResultRow]) -> None:
        """Store held-out results outside a generation's commit (`evolve test`): an
        individual's earlier result on the same split is replaced, in one transaction."""
        with self._transaction():
            for h in held:
                for table in ("held_out", "task_results"):
                    self.con.execute(f"DELETE FROM {table} WHERE run_id = ? AND individual_id = ? AND split = ?",
                                     [run_id, h.individual_id, h.split])
            self._insert("held_out", held, {"run_id": run_id})
            self._insert("task_results", tasks, {"run_id": run_id})
        self.publish()

    def task_results(self, run_id: str, split: str) -> dict[str, list[TaskResultRow]]:
        """Every stored task result of a split, by individual (tasks in id order)."""
        out: dict[str, list[TaskResultRow]] = {}
        for row in self.con.execute(
                """SELECT individual_id, split, task_id, generation, tier, passed, reason, typed, seconds
                   FROM task_results WHERE run_id = ? AND split = ? ORDER BY individual_id, task_id""",
                [run_id, split]).fetchall():
            out.setdefault(row[0], []).append(TaskResultRow(*row))
        return out

    def _insert(self, table: str, rows: Sequence[DataclassInstance], constants: Mapping[str, object]) -> None:
        """One columnar INSERT of `rows` (dataclasses whose fields are columns of `table`),
        with `constants` bound once for every row.

        Far faster than executemany. Binding costs about a microsecond per cell, so a column
        whose rows all hold the same value (a status, an empty list of constraints, NULLs)
        is bound once as a scalar, repeated by the unnest of the others.
        """
        if not rows:
            return
        names = [f.name for f in fields(rows[0])]
        columns = list(zip(*map(attrgetter(*names), rows))) if len(names) > 1 else [
            tuple(getattr(r, names[0]) for r in rows)]
        n_rows = len(rows)
        values: list[object] = list(constants.values())
        select = [f"${k + 1}" for k in range(len(values))]
        unnested = False
        for name, col in zip(names, columns):
            first = col[0]
            same = col.count(first) == n_rows
            values.append(first if same else list(col))
            cast = CASTS.get(name, "")
            select.append(f"${len(values)}{cast}" if same else f"unnest(${len(values)}){cast}")
            unnested |= not same
        if not unnested:  # every column constant: unnest one anyway, to make n_rows rows
            k = len(constants)
            values[k] = [values[k]] * n_rows
            select[k] = f"unnest(${k + 1}){CASTS.get(names[0], '')}"
        into = ", ".join([*constants, *names])
        self.con.execute(f"INSERT INTO {table} ({into}) SELECT {', '.join(select)}", values)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.con.begin()
        try:
            yield
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise

    def checkpoint(self, run_id: str) -> SavedState | None:
        row = self.con.execute("SELECT generation, state, versions FROM checkpoints WHERE run_id = ?",
                               [run_id]).fetchone()
        if row is None:
            return None
        return SavedState(int(row[0]), bytes(row[1]), json.loads(row[2]))

    # --- reading ------------------------------------------------------------------------------
    def query(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        """Rows as DuckDB returns them (their types follow the query: Any is the honest type)."""
        return self.con.execute(sql, list(params)).fetchall()

    def spend(self, run_id: str) -> SpendRow | None:
        """The run's spend after its last committed generation (None before the first, and in
        a store written before budgets existed)."""
        if self.read_only and not self.con.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_name = 'spend'").fetchall():
            return None  # a store from before budgets, opened read-only
        row = self.con.execute(
            """SELECT generation, evaluations, wall_seconds, expert_tokens, budget, stopped_by FROM spend
               WHERE run_id = ? ORDER BY generation DESC LIMIT 1""", [run_id]).fetchone()
        return None if row is None else SpendRow(*row)

    def last_generation(self, run_id: str) -> int | None:
        row = self.con.execute("SELECT max(generation) FROM generations WHERE run_id = ?", [run_id]).fetchone()
        return None if row is None or row[0] is None else int(row[0])


class StoreLocked(EvolveError):
    """Another process holds the store (DuckDB's lock on the file)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        who = f" (PID {pid})" if pid else ""
        super().__init__(f"{path}: locked by another process{who}; a run is still writing it")
        self.pid = pid


def _connect(path: Path, *, read_only: bool, wait: float = 0.0) -> DuckDBPyConnection:
    """A DuckDB connection, or one line saying why not; a lock is retried for `wait` seconds."""
    import duckdb

    deadline = time.monotonic() + wait
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise EvolveError(f"{path}: cannot open the run store: {text.splitlines()[0]}") from None
            if time.monotonic() >= deadline:
                pid = re.search(r"PID (\d+)", text)
                raise StoreLocked(path, int(pid.group(1)) if pid else None) from None
            time.sleep(0.05)
        except duckdb.Error as exc:
            raise EvolveError(f"{path}: not a readable run store: {str(exc).splitlines()[0]}") from None


@dataclass(frozen=True)
class SpeciesRow:
    """A species of the run as `run_species` stores it."""

    species: str
    population: int
    objectives: Sequence[Mapping[str, object]]  # [{metric, direction, ref}]
    constraints: Sequence[Mapping[str, object]]  # [{metric, le, ge, eq}]
    params: Mapping[str, object]
