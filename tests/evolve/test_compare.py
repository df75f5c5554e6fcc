"""`evolve compare`: real runs (numeric species evaluated in the driver, no Ray) side by side;
every number checked against the stores, read here independently."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evolve.cli import main
from evolve.config import parse_config, resolve
from evolve.loop import run_evolution
from evolve.runs import create_run
from evolve.store import HeldOutRow, Store
from tests.evolve.conftest import REPO

RUNS = {"evo": (1, 8), "base": (2, 5)}  # run id: (seed, generations); base spends less: the equal budget
GRID = {"grid-a": (3, 6), "grid-b": (4, 4)}  # a coarse grid: genomes come again, copies are kept


def _make(root: Path, run_id: str, seed: int, generations: int, species: dict[str, Any]) -> Path:
    resolved = resolve(parse_config({
        "name": run_id, "seed": seed, "generations": generations, "population": {"size": 8},
        "species": species, "objectives": [{"metric": "f1", "ref": 5.0}, {"metric": "f2", "ref": 5.0}],
        "evaluation": {"actors": 0}}))
    _, run_dir = create_run(resolved, root, run_id=run_id)
    assert run_evolution(resolved, run_id, run_dir).status == "finished"
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for rid, (seed, gens) in RUNS.items():
        _make(root, rid, seed, gens, {"name": "numeric", "params": {"problem": "zdt1", "n_var": 6}})
    for rid, (seed, gens) in GRID.items():
        _make(root, rid, seed, gens, {"name": "tests.evolve.grid_species:GridNumeric"})
    return root


def _strict(text: str) -> Any:
    def no(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=no)


def _compare(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, dict[str, Any]]:
    assert main(["compare", *args, "--format", "json"]) == 0
    rows = [_strict(line) for line in capsys.readouterr().out.splitlines()]
    return {r["run_id"]: r for r in rows}


def _expected(run_dir: Path) -> dict[str, Any]:
    """What compare should say, straight from the store."""
    with Store.open(run_dir, read_only=True) as store:
        spent, dups = store.query("""SELECT count(*) FILTER (WHERE reused_from IS NULL),
                                            count(*) FILTER (WHERE reused_from IS NOT NULL) FROM evaluations""")[0]
        last = store.query("SELECT generation, hypervolume FROM generations ORDER BY generation DESC LIMIT 1")[0]
        # generations.evaluations: what each generation spent (duplicates apart), summed as we go
        cumulative = [r[0] for r in store.query(
            "SELECT sum(evaluations) OVER (ORDER BY generation) FROM generations ORDER BY generation")]
        hvs = [r[0] for r in store.query("SELECT hypervolume FROM generations ORDER BY generation")]
        points, members = store.query("SELECT count(DISTINCT objectives), count(*) FROM pareto_front")[0]
        seconds = store.query("SELECT sum(wall_seconds) FROM evaluations")[0][0]
    return {"evaluations": spent, "duplicates": dups, "generations": last[0] + 1, "hypervolume": last[1],
            "cumulative": cumulative, "hypervolumes": hvs, "front_points": points, "front_individuals": members,
            "evaluation_seconds": seconds}


def test_two_runs_side_by_side_match_their_stores(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    got = _compare(capsys, "evo", str(runs / "base"), "--out", str(runs))  # a run id and a path
    assert set(got) == set(RUNS)
    budget = min(_expected(runs / rid)["evaluations"] for rid in RUNS)
    assert budget == _expected(runs / "base")["evaluations"] < _expected(runs / "evo")["evaluations"]
    for rid, side in got.items():
        want = _expected(runs / rid)
        assert side["species"] == "numeric" and side["status"] == "finished"
        for key in ("evaluations", "duplicates", "generations", "hypervolume", "front_points", "front_individuals"):
            assert side[key] == want[key], key
        assert side["evaluation_seconds"] == pytest.approx(want["evaluation_seconds"])
        assert side["budget"] == budget
        assert [e for e, _ in side["hypervolume_curve"]] == want["cumulative"]
        assert [h for _, h in side["hypervolume_curve"]] == want["hypervolumes"]
        assert [e for e, _ in side["validation_curve"]] == want["cumulative"]
        assert all(v is None for _, v in side["validation_curve"])  # numeric: no held-out split
        assert side["validation_best_any_front"] is None and side["test_best"] is None
        assert side["expert_tokens"] is None
        # at the equal budget: the last generation that spent no more than it
        at = side["at_budget"][-1]
        assert at["evaluations"] == budget
        k = max(i for i, e in enumerate(want["cumulative"]) if e <= budget)
        assert at["hypervolume"] == want["hypervolumes"][k]
    assert got["base"]["at_budget"][-1]["hypervolume"] == got["base"]["hypervolume"]

    assert main(["compare", "evo", "base", "--out", str(runs)]) == 0
    table = capsys.readouterr().out
    assert f"equal budget {budget} evaluations (the smallest: base)" in table
    assert f"@ {budget} evals (100%)" in table and f"@ {budget // 4} evals (25%)" in table
    evo = _expected(runs / "evo")
    assert f"{evo['front_points']} point(s), {evo['front_individuals']} ind." in table


def test_copies_are_kept_apart_and_a_front_counts_distinct_points(runs: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    got = _compare(capsys, "grid-a", "grid-b", "--out", str(runs), "--species", "grid_numeric")
    for rid, side in got.items():
        want = _expected(runs / rid)
        assert side["evaluations"] == want["evaluations"] and side["duplicates"] == want["duplicates"]
        assert side["front_points"] == want["front_points"] and side["front_individuals"] == want["front_individuals"]
    assert sum(s["duplicates"] for s in got.values()) > 0  # the grid makes genomes again
    with Store.open(runs / "grid-a", read_only=True) as store:
        assert got["grid-a"]["evaluations"] + got["grid-a"]["duplicates"] == store.query(
            "SELECT count(*) FROM evaluations")[0][0]


def test_validation_curve_against_evaluations_spent(runs: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Held-out results written through the store's public method (as `evolve test` does)."""
    evo = tmp_path / "evo"
    shutil.copytree(runs / "evo", evo)
    with Store.open(evo) as store:
        on_front = {g: [r[0] for r in store.query(
            "SELECT individual_id FROM fronts WHERE generation = ? AND rank = 0 ORDER BY individual_id", [g])]
            for g in range(RUNS["evo"][1])}
        never = store.query("""SELECT individual_id FROM individuals WHERE individual_id NOT IN
                               (SELECT individual_id FROM fronts WHERE rank = 0) ORDER BY 1""")
        final = [r[0] for r in store.query("SELECT individual_id FROM pareto_front ORDER BY 1")]
        assert never, "some individual of the run never made a front"
        # generation 1: 0.25; generation 4: 0.75; a later 0.5 does not lower the best so far; one never on a
        # front (1.0) does not count; the final front's best is its own
        written = {on_front[1][0]: (1, 0.25), on_front[4][0]: (4, 0.75), final[0]: (7, 0.5), never[0][0]: (2, 1.0)}
        assert len(written) == 4
        held = [HeldOutRow(ind, "validation", g, "ok", int(rate * 4), 4, rate, None, 1.5, None)
                for ind, (g, rate) in written.items()]
        held.append(HeldOutRow(final[-1], "test", 7, "ok", 1, 3, 1 / 3, None, 2.0, None))
        store.replace_held_out("evo", held, [])
        rid = store.run()["run_id"]
    assert rid == "evo"

    got = _compare(capsys, str(evo), "base", "--out", str(runs))
    side, want = got["evo"], _expected(evo)
    best = [None if g < 1 else 0.25 if g < 4 else 0.75 for g in range(RUNS["evo"][1])]
    assert side["validation_curve"] == [[e, b] for e, b in zip(want["cumulative"], best)]
    assert side["validation_best_any_front"] == 0.75
    assert side["validation_best_final_front"] == max(rate for ind, (_, rate) in written.items() if ind in final)
    assert side["test_best"] == pytest.approx(1 / 3)
    assert side["held_out_seconds"] == pytest.approx(4 * 1.5 + 2.0)
    budget = got["base"]["evaluations"]
    for at in side["at_budget"]:  # the best known once at most that many evaluations were spent
        k = [i for i, e in enumerate(want["cumulative"]) if e <= at["evaluations"]]
        assert at["validation"] == (best[k[-1]] if k else None)
    assert side["at_budget"][-1]["evaluations"] == budget
    assert got["base"]["validation_curve"][-1][1] is None

    assert main(["compare", str(evo), "base", "--out", str(runs)]) == 0
    table = capsys.readouterr().out
    assert "best test (never selected on)" in table and "0.333" in table


@pytest.fixture
def held(runs: Path, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A copy of a run whose store another process holds, as a running driver would."""
    run_dir = tmp_path / "live"
    shutil.copytree(runs / "base", run_dir)
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir / "store.duckdb")],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    yield run_dir, holder.pid
    holder.kill()
    holder.wait(timeout=10)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("evolve: error: ")
    return captured.err


def test_a_live_run_is_one_line_naming_it(runs: Path, held: tuple[Path, int],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, pid = held
    assert main(["compare", "evo", str(run_dir), "--out", str(runs)]) == 2
    err = _one_line(capsys)
    assert f"run {run_dir} is still going" in err and f"PID {pid}" in err


def test_bad_input_is_one_line(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(runs)]
    assert main(["compare", "evo", "nope", *out]) == 2
    assert "no run 'nope'" in _one_line(capsys)
    assert main(["compare", "evo", *out]) == 2
    assert "give at least two runs" in _one_line(capsys)
    assert main(["compare", "evo", "grid-a", *out]) == 2
    assert "share no species" in (err := _one_line(capsys)) and "evo: numeric" in err and "grid_numeric" in err
    assert main(["compare", "evo", "base", "--species", "tower", *out]) == 2
    assert "run evo has no species 'tower'" in _one_line(capsys)
    assert main(["compare", "evo", "evo", *out]) == 2
    assert "given twice" in _one_line(capsys)
    with pytest.raises(SystemExit) as exc:  # no run at all: argparse says so
        main(["compare", *out])
    assert exc.value.code == 2
    capsys.readouterr()
