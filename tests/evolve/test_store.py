"""The DuckDB store: schema, atomic generations, views, staging, a locked file."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from evolve.errors import EvolveError
from evolve.store import (
    EvaluationRow,
    FrontRow,
    GenerationRecord,
    GenerationRow,
    IndividualRow,
    SavedState,
    StagedRow,
    Store,
    metrics_json,
)
from tests.evolve.conftest import REPO

RUN = "r1"


def _store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path, create=True)
    store.create_run(run_id=RUN, name="t", species="numeric", seed=2**64 - 1, generations=2,
                     objectives=[{"metric": "f1", "direction": "min", "ref": 1.0},
                                 {"metric": "f2", "direction": "min", "ref": 1.0}],
                     constraints=[], config={"name": "t"}, versions={"pymoo": "x"})
    return store


def _record(g: int, ids: list[str], parents: dict[str, list[str]], objectives: dict[str, list[float]],
            fronts: dict[str, int]) -> GenerationRecord:
    return GenerationRecord(
        GenerationRow(g, "numeric", 0.5, len(ids), 0, 0, len(fronts), sum(r == 0 for r in fronts.values()), 0.1),
        individuals=[IndividualRow(i, "numeric", g, f"h-{i}", "[0.5]", parents.get(i, []), 2**63 + k, "sample")
                     for k, i in enumerate(ids)],
        evaluations=[EvaluationRow(i, g, "ok", list(objectives[i]),
                                   metrics_json({"f1": objectives[i][0], "f2": objectives[i][1], "flag": True,
                                                 "slow": float("inf")}),
                                   [], 0.0, True, None, 0.1, "node-a", None, None, 1, 0, None, None) for i in ids],
        fronts=[FrontRow(g, i, r, 1.0 if r == 0 else None) for i, r in fronts.items()])


def _state(g: int) -> SavedState:
    return SavedState(g + 1, b"state", {"pymoo": "x"})


def test_generations_commit_and_views_answer(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.commit_generations(RUN, [_record(0, ["a", "b"], {}, {"a": [0.1, 0.9], "b": [0.9, 0.1]},
                                               {"a": 0, "b": 0})], _state(0))
        store.commit_generations(RUN, [_record(1, ["c", "d"], {"c": ["a", "b"], "d": ["c"]},
                                               {"c": [0.2, 0.2], "d": [0.5, 0.5]}, {"a": 0, "b": 0, "c": 0, "d": 1})],
                                 _state(1))
        assert store.run()["seed"] == 2**64 - 1
        front = store.query("SELECT individual_id FROM pareto_front ORDER BY 1")
        assert [r[0] for r in front] == ["a", "b", "c"]
        lineage = store.query("SELECT depth, individual_id FROM lineage('d')")
        assert lineage == [(0, "d"), (1, "c"), (2, "a"), (2, "b")]
        long = {(r[0], r[1]): r[2] for r in store.query(
            "SELECT individual_id, metric, value FROM metrics_long WHERE individual_id = 'c'")}
        assert long == {("c", "f1"): 0.2, ("c", "f2"): 0.2, ("c", "flag"): 1.0, ("c", "slow"): float("inf")}
        assert store.checkpoint(RUN) == SavedState(2, b"state", {"pymoo": "x"})
        assert store.last_generation(RUN) == 1


def test_a_failing_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.commit_generations(RUN, [_record(0, ["a"], {}, {"a": [0.1, 0.9]}, {"a": 0})], _state(0))
        broken = _record(1, ["b"], {}, {"b": [0.2, 0.2]}, {"a": 0, "b": 0})
        broken.evaluations[0].status = "exploded"  # violates CHECK
        with pytest.raises(duckdb.ConstraintException):
            store.commit_generations(RUN, [broken], _state(1))
        assert store.query("SELECT count(*) FROM individuals")[0][0] == 1
        assert store.query("SELECT count(*) FROM generations")[0][0] == 1
        assert store.checkpoint(RUN) == _state(0)


def test_staged_evaluations_are_cleared_by_their_generation(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        rows = [StagedRow(0, "a", "h-a", b"outcome-a"), StagedRow(0, "b", "h-b", b"outcome-b")]
        store.stage(RUN, rows)
        assert sorted(store.staged(RUN, 0), key=lambda r: r.individual_id) == rows
        assert store.last_staged(RUN) == 0
        store.commit_generations(RUN, [_record(0, ["a", "b"], {}, {"a": [0.1, 0.9], "b": [0.9, 0.1]},
                                               {"a": 0, "b": 0})])
        assert store.staged(RUN, 0) == [] and store.last_staged(RUN) is None


def test_a_locked_store_is_one_clear_error(tmp_path: Path) -> None:
    _store(tmp_path).close()
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "store.duckdb")],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for read_only in (False, True):
            with pytest.raises(EvolveError) as info:
                Store.open(tmp_path, read_only=read_only)
            assert f"(PID {holder.pid})" in str(info.value)
            assert "locked by another process" in str(info.value)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    deadline = time.monotonic() + 10
    while True:  # the lock goes with the process
        try:
            Store.open(tmp_path, read_only=True).close()
            break
        except EvolveError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_no_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EvolveError, match="no run store here"):
        Store.open(tmp_path)


def test_lineage_keeps_each_ancestor_once_at_its_fewest_steps(tmp_path: Path) -> None:
    # e <- (d, a); d <- (c, b); c <- (a, b): a and b are reached by paths of 1, 2 and 3 steps
    with _store(tmp_path) as store:
        store.commit_generations(RUN, [_record(0, ["a", "b"], {}, {"a": [0.1, 0.9], "b": [0.9, 0.1]},
                                               {"a": 0, "b": 0})])
        store.commit_generations(RUN, [_record(1, ["c", "d", "e"], {"c": ["a", "b"], "d": ["c", "b"], "e": ["d", "a"]},
                                               {"c": [0.2, 0.2], "d": [0.3, 0.3], "e": [0.4, 0.4]},
                                               {"c": 0, "d": 1, "e": 1})])
        lineage = store.query("SELECT depth, individual_id FROM lineage('e')")
        assert lineage == [(0, "e"), (1, "a"), (1, "d"), (2, "b"), (2, "c")]


def test_generation_statistics_are_stored_and_older_stores_gain_their_columns(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        rec = _record(0, ["a", "b"], {}, {"a": [0.1, 0.9], "b": [0.1, 0.9]}, {"a": 0, "b": 0})
        rec.row.objective_stats = '[{"metric":"f1","n":2,"min":0.1,"mean":0.1,"max":0.1}]'
        rec.row.front_points, rec.row.failures = 1, '{"timeout: no result within Ns":3}'
        store.commit_generations(RUN, [rec])
        row = store.query("SELECT front_points, objective_stats->>'$[0].max', failures->>'$.\"timeout: no result "
                          "within Ns\"' FROM generations")
        assert row == [(1, "0.1", "3")]
        for column in ("objective_stats", "front_points", "failures"):  # as a store made before them
            store.query(f"ALTER TABLE generations DROP COLUMN {column}")
    with Store.open(tmp_path) as store:
        assert store.query("SELECT front_points, objective_stats, failures FROM generations") == [(None, None, None)]
