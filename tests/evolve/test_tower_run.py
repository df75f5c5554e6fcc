"""A real tower run fills every table consistently."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from evolve.config import parse_config, resolve
from evolve.loop import run_evolution
from evolve.runs import create_run
from evolve.store import Store
from harness_tower.genome import TowerGenome

pytestmark = [pytest.mark.ray, pytest.mark.tmux, pytest.mark.slow]

POP, GENS = 4, 3


SUITE = """
name: tiny
version: 1
tasks:
- {id: hello, instruction: "Print the words hello world.", split: train, tier: 1,
   check: {output: [hello world]}, solution: [echo hello world]}
- {id: sum, instruction: "What is 17 plus 25? Print just the number.", split: train, tier: 1,
   check: {output: ["42"]}, solution: [echo 42]}
- {id: shout, instruction: "Print the word banana in capital letters.", split: train, tier: 1,
   check: {output: [BANANA]}, solution: [echo BANANA]}
- {id: greet, instruction: "Print the words good morning.", split: validation, tier: 1,
   check: {output: [good morning]}, solution: [echo good morning]}
- {id: count, instruction: "Print the numbers from 1 to 3, one per line.", split: validation, tier: 1,
   check: {output: ["1", "2", "3"]}, solution: [seq 1 3]}
- {id: bye, instruction: "Print the words good bye.", split: test, tier: 1,
   check: {output: [good bye]}, solution: [echo good bye]}
- {id: seven, instruction: "Print the number 7.", split: test, tier: 1,
   check: {output: ["7"]}, solution: [echo 7]}
"""


@pytest.fixture(scope="module")
def tower_run(ray_local: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    suite = tmp_path_factory.mktemp("suite") / "tiny.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    cfg = parse_config({
        "name": "tower", "seed": 21, "generations": GENS,
        "species": {"name": "tower", "params": {"depth": 2, "tasks": 2, "suite": str(suite)}},
        "population": {"size": POP},
        "objectives": [{"metric": "task_pass_rate", "direction": "max", "ref": 0.0},
                       {"metric": "syntax_ratio@h2", "direction": "max", "ref": 0.0},
                       {"metric": "max_diff_len@h2", "direction": "min", "ref": 2000}],
        "constraints": [{"metric": "keys_audit", "eq": 0}, {"metric": "self_read", "eq": 0}],
        "evaluation": {"timeout": 90, "actors": 2},
    })
    resolved = resolve(cfg)
    run_id, run_dir = create_run(resolved, tmp_path_factory.mktemp("runs"), run_id="tower")
    summary = run_evolution(resolved, run_id, run_dir)
    assert summary.status == "finished"
    return run_dir


def test_every_individual_is_evaluated_once_with_its_lineage(tower_run: Path) -> None:
    with Store.open(tower_run, read_only=True) as store:
        ind = store.query("SELECT individual_id, generation, hash, genome, parents, seed FROM individuals")
        ev = store.query("SELECT individual_id, status, node, trajectory, wall_seconds FROM evaluations")
        assert len(ind) == len(ev) == POP * GENS
        assert {r[0] for r in ind} == {r[0] for r in ev}
        ids = {r[0] for r in ind}
        for iid, gen, hash_, genome, parents, seed in ind:
            g = TowerGenome.from_dict(json.loads(genome))
            assert g.hash() == hash_  # the stored hash is the genome's blake2b
            assert 0 <= seed < 2**64
            assert (gen == 0) == (parents == [])
            assert all(p in ids and p < iid for p in parents)  # parents come from earlier generations
        assert all(node and wall > 0 for _, _, node, _, wall in ev)
        from harness_tower.sandbox import (
            resolve_isolation,  # every evaluation says how it was sealed
        )
        assert {r[0] for r in store.query("SELECT isolation FROM evaluations")} == {resolve_isolation("auto")}
        lineage = store.query("SELECT individual_id, depth FROM lineage(?)", [f"g{GENS - 1:03d}-000"])
        assert lineage[0] == (f"g{GENS - 1:03d}-000", 0) and any(d >= 1 for _, d in lineage)
        n_metrics = store.query("SELECT count(*) FROM metrics_long WHERE metric = 'syntax_ratio@h2'")[0][0]
        assert n_metrics == sum(1 for r in ev if r[1] in ("ok", "invalid", "failed") and r[3])
        gens = store.query("SELECT generation, evaluations, population FROM generations ORDER BY 1")
        assert gens == [(g, POP, POP) for g in range(GENS)]


def test_stored_fronts_match_a_recomputation_from_stored_objectives(tower_run: Path) -> None:
    with Store.open(tower_run, read_only=True) as store:
        run = store.run()
        sign = np.array([-1.0 if o["direction"] == "max" else 1.0 for o in run["objectives"]])
        for g in range(GENS):
            rows = store.query("""SELECT f.individual_id, f.rank, e.objectives, e.feasible
                                  FROM fronts f JOIN evaluations e USING (run_id, individual_id)
                                  WHERE f.generation = ? ORDER BY 1""", [g])
            assert len(rows) == POP
            feasible = [r for r in rows if r[3]]
            if feasible:
                F = np.array([r[2] for r in feasible], dtype=float) * sign
                first = {feasible[k][0] for k in NonDominatedSorting().do(F, only_non_dominated_front=True)}
                assert {r[0] for r in rows if r[1] == 0} == first
            assert all(r[1] > 0 for r in rows if not r[3])  # infeasible never on the first front
        front = store.query("SELECT individual_id FROM pareto_front")
        last = store.query("SELECT individual_id FROM fronts f JOIN evaluations e USING (run_id, individual_id) "
                           "WHERE f.generation = ? AND f.rank = 0 AND e.feasible", [GENS - 1])
        assert sorted(front) == sorted(last) and len(front) >= 1


def test_trajectories_live_under_the_run_directory(tower_run: Path) -> None:
    with Store.open(tower_run, read_only=True) as store:
        rows = store.query("SELECT individual_id, trajectory, result_bytes FROM evaluations")
    for iid, rel, size in rows:
        assert rel == f"trajectories/{iid}" and size > 0
        repo = tower_run / rel
        subjects = subprocess.run(["git", "-C", str(repo), "log", "--format=%s"], capture_output=True, text=True,
                                  check=True).stdout.splitlines()
        assert subjects[-1] == "init" and len(subjects) > 10
        assert not subprocess.run(["git", "-C", str(repo), "remote"], capture_output=True, text=True,
                                  check=True).stdout
    assert not list((tower_run / "trajectories").glob(".*.bundle"))


def test_status_and_fronts_commands_read_the_store(tower_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evolve.cli import main

    assert main(["status", str(tower_run)]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and f"{GENS} of {GENS} committed" in out
    assert main(["fronts", str(tower_run), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and set(lines[0]["objectives"]) == {"task_pass_rate", "syntax_ratio@h2", "max_diff_len@h2"}
    assert all(0.0 <= line["validation"] <= 1.0 for line in lines)  # every front member, validated
    assert main(["status", "--out", str(tower_run.parent)]) == 0
    assert "tower" in capsys.readouterr().out


def test_every_evaluation_stores_its_generations_task_sample(tower_run: Path) -> None:
    with Store.open(tower_run, read_only=True) as store:
        rows = store.query("""SELECT t.individual_id, t.generation, list(t.task_id ORDER BY t.task_id),
                                     avg(t.passed::INT), any_value(e.metrics ->> 'task_pass_rate')
                              FROM task_results t JOIN evaluations e USING (run_id, individual_id)
                              WHERE t.split = 'train' GROUP BY ALL ORDER BY 1""")
    assert len(rows) == POP * GENS
    draws: dict[int, set[tuple[str, ...]]] = {}
    for _, gen, ids, rate, metric in rows:
        draws.setdefault(gen, set()).add(tuple(ids))
        assert len(ids) == 2 and set(ids) <= {"hello", "sum", "shout"}
        assert rate == pytest.approx(float(metric))  # the objective is what the stored tasks say
    assert all(len(d) == 1 for d in draws.values())  # one draw for every individual of a generation


def test_front_members_are_validated_once_per_genome(tower_run: Path) -> None:
    with Store.open(tower_run, read_only=True) as store:
        front = store.query("""SELECT DISTINCT f.individual_id FROM fronts f JOIN evaluations e
                               USING (run_id, individual_id) WHERE f.rank = 0 AND e.feasible""")
        held = store.query("""SELECT h.individual_id, i.hash, h.tasks, h.passed, h.pass_rate, h.reused_from
                              FROM held_out h JOIN individuals i USING (run_id, individual_id)
                              WHERE h.split = 'validation'""")
        tasks = store.query("""SELECT individual_id, list(task_id ORDER BY task_id), sum(passed::INT)
                               FROM task_results WHERE split = 'validation' GROUP BY 1""")
    assert {r[0] for r in held} == {r[0] for r in front}
    by_ind = {r[0]: (r[1], r[2]) for r in tasks}
    for ind, _, n, passed, rate, _ in held:
        assert n == 2 and by_ind[ind] == (["count", "greet"], passed) and rate == passed / 2
    evaluated = [h for _, h, *_, reused in held if reused is None]
    assert len(evaluated) == len(set(evaluated))  # a genome is validated once; copies say whose result


def test_evolve_test_evaluates_the_front_on_the_test_split(tower_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evolve.cli import main

    assert main(["test", str(tower_run)]) == 0
    out = capsys.readouterr().out
    with Store.open(tower_run, read_only=True) as store:
        front = [r[0] for r in store.query("SELECT individual_id FROM pareto_front ORDER BY 1")]
        held = store.query("SELECT individual_id, tasks FROM held_out WHERE split = 'test' ORDER BY 1")
        tasks = store.query("SELECT DISTINCT task_id FROM task_results WHERE split = 'test' ORDER BY 1")
    assert [r[0] for r in held] == front and all(n == 2 for _, n in held)
    assert tasks == [("bye",), ("seven",)]
    assert "test split" in out and front[0] in out
    assert main(["test", str(tower_run), "g999-000"]) == 2
    assert "no individual g999-000" in capsys.readouterr().err
