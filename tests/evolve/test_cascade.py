"""Cascades: a cheap stage (fewer tasks, a shallower tower) gates the full evaluation; and timing
calibrated per evaluator (`evaluation.calibrate`), checked on the same run."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from evolve.config import parse_config, resolve
from evolve.errors import EvolveError
from evolve.loop import run_evolution
from evolve.runs import create_run
from evolve.store import Store
from tests.evolve.tiny_suite import TWO_TRAIN_ONE_VALIDATION

SUITE = TWO_TRAIN_ONE_VALIDATION.format(name="gate")


def _config(suite: Path, cascade: dict[str, Any], *, species: str = "tower", seed: int = 3) -> dict[str, Any]:
    params: dict[str, Any] = ({"depth": 1, "tasks": 2, "suite": str(suite)} if species == "tower"
                              else {"problem": "zdt1", "n_var": 4})
    return {"name": "gate", "seed": seed, "generations": 2,
            "species": {"name": species, "params": params}, "population": {"size": 4},
            "objectives": ([{"metric": "task_pass_rate", "direction": "max", "ref": 0.0},
                            {"metric": "avg_interval@h1", "direction": "min"}] if species == "tower" else None),
            "evaluation": {"timeout": 60, "actors": 2, "validation": False, "cascade": cascade,
                           "calibrate": species == "tower"}}


@pytest.mark.parametrize(("species", "cascade", "message"), [
    ("numeric", {"tasks": 1, "metric": "f1", "max": 1.0},
     "evaluation.cascade.tasks: species numeric has no cheaper stage"),
    ("tower", {"tasks": 3, "metric": "task_pass_rate", "min": 0.5},
     "evaluation.cascade.tasks: 3 is more than the full evaluation's 2"),
    ("tower", {"tasks": 1, "depth": 2, "metric": "task_pass_rate", "min": 0.5},
     "evaluation.cascade.depth: 2 is deeper than the full evaluation's 1"),
    ("tower", {"tasks": 2, "metric": "task_pass_rate", "min": 0.5},
     "evaluation.cascade.tasks: the cheap stage must be cheaper"),
    ("tower", {"tasks": 1, "metric": "task_pass_rate", "min": 1.5},
     "evaluation.cascade.min: 1.5 is outside task_pass_rate's range 0..1"),
    ("tower", {"tasks": 1, "metric": "nonsense", "min": 0.5}, "evaluation.cascade.metric: unknown metric"),
])
def test_a_cascade_the_species_cannot_run_is_one_line_naming_the_field(
        tmp_path: Path, species: str, cascade: dict[str, Any], message: str) -> None:
    (tmp_path / "gate.yaml").write_text(SUITE, encoding="utf-8")
    cfg = _config(tmp_path / "gate.yaml", cascade, species=species)
    if cfg["objectives"] is None:
        del cfg["objectives"]
    with pytest.raises(EvolveError) as info:
        resolve(parse_config(cfg))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_threshold_is_required(tmp_path: Path) -> None:
    with pytest.raises(EvolveError) as info:
        parse_config(_config(tmp_path / "gate.yaml", {"tasks": 1, "metric": "task_pass_rate"}))
    assert "evaluation.cascade" in str(info.value) and "min or max" in str(info.value)


@pytest.mark.ray
@pytest.mark.tmux
@pytest.mark.slow
def test_the_gate_keeps_failing_individuals_from_the_full_evaluation(ray_local: object, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Depth-1 towers on two tasks; the cheap stage is the first task of the draw and must pass."""
    (tmp_path / "gate.yaml").write_text(SUITE, encoding="utf-8")
    resolved = resolve(parse_config(_config(tmp_path / "gate.yaml",
                                            {"tasks": 1, "metric": "task_pass_rate", "min": 1.0})))
    run_id, run_dir = create_run(resolved, tmp_path / "runs", run_id="gate")
    assert run_evolution(resolved, run_id, run_dir).status == "finished"
    with Store.open(run_dir, read_only=True) as store:
        stages = store.query("""SELECT individual_id, stage, generation, status, metrics, seconds, passed
                                FROM stages ORDER BY individual_id, stage""")
        evaluations = {r[0]: r[1:] for r in store.query(
            "SELECT individual_id, status, error, reused_from FROM evaluations")}
        calibrated = store.query("SELECT metrics, objectives FROM evaluations WHERE status = 'ok' "
                                 "AND reused_from IS NULL")
        generations = store.query("SELECT generation, gated, stage_seconds, gate_saved FROM generations "
                                  "ORDER BY generation")
    cheap = {r[0]: r for r in stages if r[1] == "cheap"}
    full = {r[0]: r for r in stages if r[1] == "full"}
    # every individual evaluated afresh went through the cheap stage, on one task
    assert set(cheap) == {i for i, (_, _, reused) in evaluations.items() if reused is None}
    assert all(json.loads(r[4])["tasks_sampled"] == 1 for r in cheap.values())
    for ind, row in cheap.items():
        status, error, _ = evaluations[ind]
        if row[6]:  # passed: evaluated fully, on both tasks
            assert ind in full and full[ind][3] == status and json.loads(full[ind][4])["tasks_sampled"] == 2
        else:  # gated: never evaluated fully, and infeasible
            assert ind not in full and status == "failed" and error.startswith("gated: ")
    assert any(r[6] for r in cheap.values()) and not all(r[6] for r in cheap.values())
    for g, gated, stage_seconds, saved in generations:
        mine = [r for r in cheap.values() if r[2] == g]
        assert gated == sum(not r[6] for r in mine)
        assert math.isclose(stage_seconds, math.fsum(r[5] for r in mine))
        ran = [r[5] for r in full.values() if r[2] == g]
        earlier = [r[5] for r in full.values() if r[2] < g]
        if not gated:
            assert saved == 0
        elif ran:  # the gated would have taken the generation's mean full seconds
            assert math.isclose(saved, gated * math.fsum(ran) / len(ran))
        else:  # the earlier generations' mean; unknown before any full evaluation ran
            assert saved is None if not earlier else math.isclose(saved, gated * math.fsum(earlier) / len(earlier))
    from evolve.cli import main

    assert main(["status", str(run_dir)]) == 0  # evolve status says what the gate did
    shown = " ".join(capsys.readouterr().out.split())
    assert f"{sum(not r[6] for r in cheap.values())} gated over 2 generation(s)" in shown
    # calibrate: raw and normalised timing stored, selection's objective is the normalised one
    assert calibrated
    for text, objectives in calibrated:
        m = json.loads(text)
        assert m["reference_seconds"] > 0
        assert math.isclose(m["avg_interval_norm@h1"], m["avg_interval@h1"] / m["reference_seconds"])
        assert math.isclose(objectives[1], m["avg_interval_norm@h1"])


def test_the_reference_is_timed_again_once_older_than_calibrate_every() -> None:
    from evolve.calibrate import Clock

    takes, rare = iter([0.5, None, 0.7]), [0.4]
    always, rarely = Clock(0.0, lambda: next(takes)), Clock(3600.0, rare.pop)
    # a take that failed (None) keeps the last good value; a second rare take would find the list empty
    assert [always.current() for _ in range(3)] == [0.5, 0.5, 0.7]
    assert [rarely.current() for _ in range(3)] == [0.4, 0.4, 0.4]


@pytest.mark.tmux
def test_the_reference_tower_times_what_a_tower_evaluation_times(tmp_path: Path) -> None:
    from populations.tower import TowerSpecies

    values = [TowerSpecies(depth=1).reference_timing(tmp_path) for _ in range(2)]
    # avg_interval@h2 of the same fixed tower: seconds between key sends, a few ms each
    assert all(v is not None and 1e-4 < v < 0.5 for v in values)
    assert list(tmp_path.iterdir()) == []  # its sandbox is gone


def test_calibrate_needs_a_species_with_timing_metrics(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "gate.yaml", {"tasks": 1, "metric": "f1", "max": 1.0}, species="numeric")
    del cfg["objectives"]
    cfg["evaluation"] = {"actors": 0, "calibrate": True}
    with pytest.raises(EvolveError) as info:
        resolve(parse_config(cfg))
    assert "evaluation.calibrate: species numeric reports no timing metric" in str(info.value)
