"""`evolve fronts` on a real run's store: formats, filters, errors."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pytest

from tests.inspect.conftest import evolve

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.tmux]


def test_front_in_every_format_matches_the_store(tower_run: Path) -> None:
    with duckdb.connect(str(tower_run / "store.duckdb"), read_only=True) as con:
        front = sorted(r[0] for r in con.execute("SELECT individual_id FROM pareto_front").fetchall())
        first = con.execute("SELECT min(generation) FROM fronts").fetchone()
    assert front and first is not None
    as_json = evolve("fronts", str(tower_run), "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    def refuse(token: str) -> None:
        raise AssertionError(f"not JSON: {token}")

    rows = [json.loads(line, parse_constant=refuse) for line in as_json.stdout.splitlines()]  # strict JSON
    assert sorted(r["individual_id"] for r in rows) == front
    assert all(set(r["objectives"]) == {"task_pass_rate", "syntax_ratio@h2", "max_diff_len@h2"} for r in rows)
    assert all(0.0 <= r["validation"] <= 1.0 and r["test"] is None for r in rows)
    by_id = {r["individual_id"]: r for r in rows}
    for r in rows:  # a copy names the first individual at its point; the first names none
        leader = by_id[r["same_as"]] if r["same_as"] else r
        assert leader["objectives"] == r["objectives"] and leader["same_as"] is None
    points = {json.dumps(r["objectives"], sort_keys=True) for r in rows}
    shown = evolve("fronts", str(tower_run))
    assert f"{len(rows)} individual(s) at {len(points)} distinct point(s)" in shown.stdout.replace("\n", " ")
    as_csv = evolve("fronts", str(tower_run), "--format", "csv", "--species", "tower")
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert sorted(r["individual_id"] for r in table) == front
    assert all(r["trajectory"].startswith("trajectories/") for r in table)
    as_table = evolve("fronts", str(tower_run), "--generation", str(first[0]))
    assert as_table.returncode == 0 and f"generation {first[0]}" in as_table.stdout


@pytest.mark.parametrize("args, message", [
    (["--species", "accordion"], "has no species 'accordion'"),
    (["--generation", "99"], "has no generation 99"),
    (["--format", "xml"], "invalid choice"),
])
def test_fronts_errors(tower_run: Path, args: list[str], message: str) -> None:
    r = evolve("fronts", str(tower_run), *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
