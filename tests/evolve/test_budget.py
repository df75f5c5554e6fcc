"""Budgets: a run stops cleanly between generations when a limit is reached, says which,
shows its spend (stored and live), and goes on with `--resume` under a raised budget to the
very run an unlimited driver makes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evolve.cli import main
from tests.evolve.conftest import REPO, write_config

POP, GENS = 8, 6


def _config(**budget: object) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "budget", "seed": 3, "generations": GENS,
                            "species": {"name": "numeric", "params": {"problem": "zdt1", "n_var": 5}},
                            "population": {"size": POP},
                            "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
                            "evaluation": {"actors": 0}}
    if budget:
        data["budget"] = budget
    return data


def _said(text: str) -> str:
    """What the console printed, as one line (rich wraps at the terminal's width)."""
    return " ".join(text.split())


def _rows(run_dir: Path) -> list[tuple[Any, ...]]:
    from evolve.store import Store

    with Store.open(run_dir, read_only=True) as store:
        return store.query("""SELECT i.individual_id, i.hash, i.seed, e.objectives FROM individuals i
                              JOIN evaluations e USING (run_id, individual_id) ORDER BY 1""")


def test_a_budget_stops_the_run_and_a_raised_one_resumes_it(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from evolve.store import Store

    out = tmp_path / "runs"
    small = write_config(tmp_path / "small.yaml", _config(evaluations=20))
    assert main(["run", str(small), "--runs", str(out), "--run-id", "b", "--quiet"]) == 0
    err = _said(capsys.readouterr().err)
    # 8 + 8 < 20 <= 24: the third generation reaches it, and is committed whole
    assert "run b stopped: 3 generation(s) (budget evaluations 24 of 20 reached; raise it and --resume b)" in err
    with Store.open(out / "b", read_only=True) as store:
        assert store.run()["status"] == "stopped" and store.last_generation("b") == 2
        assert store.checkpoint("b") is not None and store.query("SELECT count(*) FROM staged")[0][0] == 0
        spend = store.query("SELECT generation, evaluations, budget, stopped_by FROM spend ORDER BY generation")
        assert [(g, n, s) for g, n, _, s in spend] == [(0, 8, None), (1, 16, None), (2, 24, "evaluations 24 of 20")]
        assert json.loads(spend[-1][2]) == {"evaluations": 20}
    assert main(["status", str(out / "b")]) == 0
    shown = _said(capsys.readouterr().out)
    assert "stopped (budget evaluations 24 of 20 reached)" in shown and "evaluations 24 of 20" in shown

    # live: while a driver holds the store, status reads its snapshot, spend included
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(out / "b" / "store.duckdb")],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(["status", str(out / "b")]) == 0
        live = _said(capsys.readouterr().out)
        assert "live" in live and "stopped" in live and "evaluations 24 of 20" in live
    finally:
        holder.kill()
        holder.wait(timeout=10)

    # the same budget again: nothing more is spent; a raised one goes on to its own limit
    assert main(["run", str(small), "--runs", str(out), "--resume", "b", "--quiet"]) == 0
    assert "run b stopped: 3 generation(s)" in _said(capsys.readouterr().err)
    raised = write_config(tmp_path / "raised.yaml", _config(evaluations=40, wall_seconds=3600))
    assert main(["run", str(raised), "--runs", str(out), "--resume", "b", "--quiet"]) == 0
    assert "budget evaluations 40 of 40 reached" in _said(capsys.readouterr().err)
    unlimited = write_config(tmp_path / "unlimited.yaml", _config())
    assert main(["run", str(unlimited), "--runs", str(out), "--resume", "b", "--quiet"]) == 0
    assert "run b finished: 6 generation(s)" in _said(capsys.readouterr().err)
    with Store.open(out / "b", read_only=True) as store:
        assert store.run()["status"] == "finished"
        assert store.query("SELECT max(evaluations) FROM spend")[0][0] == POP * GENS
        kinds = [r[0] for r in store.query("SELECT kind FROM events WHERE kind = 'budget_reached'")]
        assert len(kinds) == 3

    # a straight run without a budget is the same run
    assert main(["run", str(unlimited), "--runs", str(out), "--run-id", "straight", "--quiet"]) == 0
    assert _rows(out / "b") == _rows(out / "straight")


@pytest.mark.parametrize(("budget", "line"), [
    ({"evaluations": 0}, "budget.evaluations: must be > 0 (got 0)"),
    ({"wall_seconds": -5}, "budget.wall_seconds: must be > 0.0 (got -5)"),
    ({"expert_tokens": {"openai": 0}}, "budget.expert_tokens.openai: must be > 0 (got 0)"),
    ({"expert_tokens": {"elsewhere": 10}}, "budget.expert_tokens.elsewhere: must be one of 'openai' or "
                                           "'accordion' (got 'elsewhere')"),
])
def test_a_budget_of_nothing_is_one_line_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         budget: dict[str, object], line: str) -> None:
    config = write_config(tmp_path / "bad.yaml", _config(**budget))
    assert main(["run", str(config), "--runs", str(tmp_path / "runs"), "--quiet"]) == 2
    assert capsys.readouterr().err == f"evolve: error: {config}: {line}\n"
    assert not (tmp_path / "runs").exists()
