"""The run store: one DuckDB file per run directory (`RUN_DIR/store.duckdb`).

The driver is the only writer. A generation is committed in one transaction: its
individuals, their evaluations, the surviving population's fronts, the generation's
statistics and (now and then) the engine checkpoint used by `--resume`. Generations
cheaper than a second may share one transaction; none is ever stored in part. Evaluations that finish while a
generation is still running are staged (one small transaction each) so that a killed
driver loses none of them; the generation's commit moves them into `evaluations`.

A run may evolve several species side by side (SPEC §7): each has its own population,
objectives, constraints (`run_species`), fronts and generation rows (`generations.species`),
all in the same tables; individual ids are unique within the run.

Views: `pareto_front` (latest non-dominated feasible set per run/species), `metrics_long`
(one row per metric), and the table macro `lineage(individual_id)` (recursive ancestry).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from evolve.errors import EvolveError

STORE_FILE = "store.duckdb"

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
    status       VARCHAR NOT NULL,          -- running | finished | interrupted
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
    population    INTEGER NOT NULL,
    front_size    INTEGER NOT NULL,
    wall_seconds  DOUBLE NOT NULL,
    committed_at  TIMESTAMP NOT NULL,
    species       VARCHAR NOT NULL,         -- one row per species and generation
    PRIMARY KEY (run_id, species, generation)
);
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
    outcome       BLOB NOT NULL,            -- pickled populations.base.Outcome (bundle removed)
    PRIMARY KEY (run_id, individual_id)
);
"""

# Stores made before a column existed gain it (appended, as in SCHEMA's order).
MIGRATIONS = """
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS artifact VARCHAR;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS isolation VARCHAR;
ALTER TABLE generations ADD COLUMN IF NOT EXISTS species VARCHAR;
UPDATE generations SET species = (SELECT r.species FROM runs r WHERE r.run_id = generations.run_id)
WHERE species IS NULL;
"""

EVALUATION_COLUMNS = ("run_id", "individual_id", "generation", "status", "objectives", "metrics", "constraints",
                      "cv", "feasible", "note", "wall_seconds", "node", "trajectory", "error", "attempts",
                      "result_bytes", "artifact", "isolation")
EVALUATION_CASTS = ("", "", "", "", "::DOUBLE[]", "::JSON", "::DOUBLE[]", "", "", "", "", "", "", "", "", "", "", "")
GENERATION_COLUMNS = ("run_id", "generation", "hypervolume", "evaluations", "failed", "reused", "population",
                      "front_size", "wall_seconds", "committed_at", "species")

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
WITH RECURSIVE anc(run_id, individual_id, depth) AS (
    SELECT run_id, individual_id, 0 FROM individuals WHERE individual_id = ind
    UNION
    SELECT p.run_id, p.individual_id, a.depth + 1
    FROM anc a
    JOIN individuals c ON c.run_id = a.run_id AND c.individual_id = a.individual_id
    JOIN individuals p ON p.run_id = c.run_id AND list_contains(c.parents, p.individual_id)
)
SELECT min(a.depth) AS depth, a.individual_id, i.generation, i.origin, i.parents, i.hash, i.run_id
FROM anc a JOIN individuals i ON i.run_id = a.run_id AND i.individual_id = a.individual_id
GROUP BY ALL
ORDER BY depth, a.individual_id;
"""


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def metrics_json(metrics: Mapping[str, Any]) -> str:
    """Strict JSON: non-finite floats become strings ("inf"), booleans 0/1."""
    clean: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, bool):
            v = int(v)
        elif isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        clean[k] = v
    return _METRICS_JSON.encode(clean)


_METRICS_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # json.dumps builds one per call


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass
class GenerationRecord:
    """Everything one generation commits, in column order of the tables."""

    generation: int
    individuals: list[tuple[Any, ...]] = field(default_factory=list)
    evaluations: list[tuple[Any, ...]] = field(default_factory=list)
    fronts: list[tuple[Any, ...]] = field(default_factory=list)
    hypervolume: float | None = None
    evaluated: int = 0
    failed: int = 0
    reused: int = 0
    wall_seconds: float = 0.0
    checkpoint: bytes | None = None  # the engine state after this generation, when saved
    staged: bool = True  # whether staged rows of this generation may exist (to delete)
    versions: Mapping[str, str] = field(default_factory=dict)
    species: str = ""  # whose generation this is ("": the run's one species)


class Store:
    """A connection to one run's DuckDB file; open with `Store.open(run_dir)`."""

    def __init__(self, con: Any, path: Path, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, run_dir: str | Path, *, read_only: bool = False, create: bool = False) -> Store:
        import duckdb

        path = Path(run_dir) / STORE_FILE
        if not create and not path.exists():
            raise EvolveError(f"{run_dir}: no run store here ({STORE_FILE} is missing)")
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                pid = re.search(r"PID (\d+)", text)
                who = f" (PID {pid.group(1)})" if pid else ""
                raise EvolveError(f"{path}: locked by another process{who}; a run is still writing it — "
                                  "wait for it to finish or stop it") from None
            raise EvolveError(f"{path}: cannot open the run store: {text.splitlines()[0]}") from None
        except duckdb.Error as exc:
            raise EvolveError(f"{path}: not a readable run store: {str(exc).splitlines()[0]}") from None
        store = cls(con, path, read_only)
        if not read_only:
            con.execute(SCHEMA)
            con.execute(MIGRATIONS)
            con.execute(VIEWS)
        return store

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs -----------------------------------------------------------------------------
    def create_run(self, *, run_id: str, name: str, species: str, seed: int, generations: int,
                   objectives: Sequence[Mapping[str, Any]], constraints: Sequence[Mapping[str, Any]],
                   config: Mapping[str, Any], versions: Mapping[str, str],
                   parts: Sequence[Mapping[str, Any]] = ()) -> None:
        """The run's row, and one `run_species` row per part: {species, population,
        objectives, constraints, params}."""
        t = now()
        self.con.begin()
        try:
            self.con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                [run_id, name, species, seed, generations, json.dumps(list(objectives)),
                 json.dumps(list(constraints)), json.dumps(config), json.dumps(dict(versions)), t, t])
            for k, p in enumerate(parts):
                self.con.execute("INSERT INTO run_species VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 [run_id, p["species"], k, int(p["population"]), json.dumps(list(p["objectives"])),
                                  json.dumps(list(p["constraints"])), json.dumps(dict(p.get("params") or {}))])
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise

    def species(self) -> list[dict[str, Any]]:
        """The run's species in config order: {species, population, objectives, constraints};
        a store from before `run_species` existed answers with the run's one species."""
        import duckdb

        run = self.run()
        try:
            rows = self.con.execute("""SELECT species, population, objectives, constraints FROM run_species
                                       WHERE run_id = ? ORDER BY position""", [run["run_id"]]).fetchall()
        except duckdb.CatalogException:
            rows = []
        if rows:
            return [{"species": r[0], "population": r[1], "objectives": json.loads(r[2]),
                     "constraints": json.loads(r[3])} for r in rows]
        population = (run["config"].get("population") or {}).get("size")
        return [{"species": run["species"], "population": population, "objectives": run["objectives"],
                 "constraints": run["constraints"]}]

    def run(self) -> dict[str, Any]:
        row = self.con.execute("SELECT * FROM runs ORDER BY created_at LIMIT 1").fetchone()
        if row is None:
            raise EvolveError(f"{self.path}: the store holds no run")
        cols = [d[0] for d in self.con.description]
        info = dict(zip(cols, row))
        for key in ("objectives", "constraints", "config", "versions"):
            info[key] = json.loads(info[key])
        return info

    def set_status(self, run_id: str, status: str) -> None:
        self.con.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", [status, now(), run_id])

    def event(self, run_id: str, kind: str, message: str, *, generation: int | None = None,
              individual_id: str | None = None) -> None:
        self.con.execute(
            "INSERT INTO events (run_id, at_time, generation, kind, individual_id, message) VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, now(), generation, kind, individual_id, message])

    # --- staging (evaluations finished inside a running generation) -----------------------
    def stage(self, rows: Sequence[tuple[str, int, str, str, bytes]]) -> None:
        """Keep finished evaluations of a running generation: (run_id, generation, id, hash, outcome)."""
        if not rows:
            return
        self.con.begin()
        try:
            self.con.executemany("INSERT OR REPLACE INTO staged VALUES (?, ?, ?, ?, ?)", [list(r) for r in rows])
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise

    def staged(self, run_id: str, generation: int) -> dict[str, tuple[str, bytes]]:
        rows = self.con.execute(
            "SELECT individual_id, hash, outcome FROM staged WHERE run_id = ? AND generation = ?",
            [run_id, generation]).fetchall()
        return {r[0]: (r[1], bytes(r[2])) for r in rows}

    # --- generations ------------------------------------------------------------------------
    def commit_generation(self, run_id: str, rec: GenerationRecord) -> None:
        """Write one generation atomically (and drop its staged evaluations)."""
        self.commit_generations(run_id, [rec])

    def commit_generations(self, run_id: str, recs: Sequence[GenerationRecord]) -> None:
        """Write whole generations in one transaction: all of each, or none of any.

        Several generations share a transaction only when they are cheap (see the loop):
        a statement's fixed cost then counts once instead of once per generation.
        """
        if not recs:
            return
        individuals = [row for rec in recs for row in rec.individuals]
        evaluations = [row for rec in recs for row in rec.evaluations]
        fronts = [row for rec in recs for row in rec.fronts]
        t = now()
        default_species = ""
        if any(not rec.species for rec in recs):
            row = self.con.execute("SELECT species FROM runs WHERE run_id = ?", [run_id]).fetchone()
            default_species = row[0] if row else ""
        generations = [(run_id, rec.generation, rec.hypervolume, rec.evaluated, rec.failed, rec.reused,
                        len(rec.fronts), sum(1 for f in rec.fronts if f[3] == 0), rec.wall_seconds, t,
                        rec.species or default_species)
                       for rec in recs]
        last_checkpoint = next((rec for rec in reversed(recs) if rec.checkpoint is not None), None)
        con = self.con
        con.begin()
        try:
            if individuals:
                self._insert_columns("individuals", individuals, casts=[
                    "", "", "", "", "", "::JSON", "::VARCHAR[]", "::UBIGINT", ""])
            if evaluations:
                width = len(evaluations[0])  # rows may stop before the later columns (NULL then)
                self._insert_columns("evaluations", evaluations, casts=EVALUATION_CASTS[:width],
                                     columns=EVALUATION_COLUMNS[:width])
            if fronts:
                self._insert_columns("fronts", fronts, casts=["", "", "", "", "::DOUBLE"])
            self._insert_columns("generations", generations, casts=["", "", "::DOUBLE", "", "", "", "", "", "", "", ""],
                                 columns=GENERATION_COLUMNS)
            if last_checkpoint is not None:
                con.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?)",
                            [run_id, last_checkpoint.generation + 1, last_checkpoint.checkpoint,
                             json.dumps(dict(last_checkpoint.versions)), t])
            if any(rec.staged for rec in recs):
                con.execute("DELETE FROM staged WHERE run_id = ? AND generation <= ?",
                            [run_id, max(rec.generation for rec in recs)])
            con.commit()
        except BaseException:
            con.rollback()
            raise

    def _insert_columns(self, table: str, rows: Sequence[tuple[Any, ...]], casts: Sequence[str],
                        columns: Sequence[str] | None = None) -> None:
        # one columnar statement per table: far faster than executemany. Binding costs about a
        # microsecond per cell, so a column whose rows all hold the same value (the run id, a
        # status, an empty list of constraints, NULLs) is bound once as a scalar, repeated by
        # the unnest of the others.
        values: list[Any] = []
        parts = []
        n_rows = len(rows)
        for k, (col, cast) in enumerate(zip(zip(*rows), casts)):
            first = col[0]
            same = col.count(first) == n_rows
            values.append(first if same else list(col))
            parts.append(f"${k + 1}{cast}" if same else f"unnest(${k + 1}){cast}")
        if all(p.startswith("$") for p in parts):  # every column constant: unnest one anyway
            values[0] = [values[0]] * n_rows
            parts[0] = f"unnest($1){casts[0]}"
        select = ", ".join(parts)
        into = f"{table} ({', '.join(columns)})" if columns else table
        self.con.execute(f"INSERT INTO {into} SELECT {select}", values)

    def checkpoint(self, run_id: str) -> tuple[int, bytes, dict[str, str]] | None:
        row = self.con.execute("SELECT generation, state, versions FROM checkpoints WHERE run_id = ?",
                               [run_id]).fetchone()
        if row is None:
            return None
        return int(row[0]), bytes(row[1]), json.loads(row[2])

    # --- reading ------------------------------------------------------------------------------
    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def last_generation(self, run_id: str) -> int | None:
        row = self.con.execute("SELECT max(generation) FROM generations WHERE run_id = ?", [run_id]).fetchone()
        return None if row is None or row[0] is None else int(row[0])
