"""Learning inside a run: children start from what their parents learned from their own tasks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from evolve.config import parse_config, resolve
from evolve.loop import run_evolution
from evolve.runs import create_run
from evolve.store import Store
from tests.evolve.tiny_suite import TWO_TRAIN_ONE_VALIDATION

pytestmark = [pytest.mark.ray, pytest.mark.tmux, pytest.mark.slow]

SUITE = TWO_TRAIN_ONE_VALIDATION.format(name="learn")


def _weights(genome_json: str) -> set[float]:
    return {row[3] for row in json.loads(genome_json)["experience"]["command"]}


def _run(tmp_path: Path, name: str, seed: int, **params: object) -> Path:
    """A two-generation run of depth-1 towers on the suite above; its run directory."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "learn.yaml").write_text(SUITE, encoding="utf-8")
    resolved = resolve(parse_config({
        "name": name, "seed": seed, "generations": 2,
        "species": {"name": "tower", "params": {"depth": 1, "tasks": 2, "suite": str(tmp_path / "learn.yaml"),
                                                **params}},
        "population": {"size": 4},
        "objectives": [{"metric": "task_pass_rate", "direction": "max", "ref": 0.0}],
        "evaluation": {"timeout": 60, "actors": 2, "validation": False}}))
    run_id, run_dir = create_run(resolved, tmp_path / "runs", run_id=name)
    assert run_evolution(resolved, run_id, run_dir).status == "finished"
    return run_dir


def test_children_inherit_the_weights_their_parents_learned(ray_local: object, tmp_path: Path) -> None:
    # only change_chunk mutates, and crossover moves whole rows: a weight no genome of generation 0
    # holds can only come from credit assignment
    run_dir = _run(tmp_path, "learn", 2, credit=0.5, mutations={"change_chunk": 1.0})
    with Store.open(run_dir, read_only=True) as store:
        genomes = store.query("SELECT generation, genome FROM individuals ORDER BY individual_id")
        passed = store.query("SELECT count(*) FROM task_results WHERE passed AND split = 'train'")[0][0]
    first = set().union(*(_weights(g) for gen, g in genomes if gen == 0))
    later = set().union(*(_weights(g) for gen, g in genomes if gen == 1))
    assert passed > 0  # the seeds print hello world: that row served a passed task
    assert later - first, "no learned weight reached a child"
    assert later - first <= {w * f for w in first for f in (1.5, 0.5, 2.25, 0.25, 0.75)}


def test_reflective_proposals_are_stored_with_what_became_of_them(ray_local: object, tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "reflect", 3, reflection=1.0)
    with Store.open(run_dir, read_only=True) as store:
        proposals = store.query("SELECT generation, parent, task_id, backend, prompt, row, reason, child, used, edit "
                                "FROM proposals ORDER BY generation, seq")
        hashes = {r[0]: r[1] for r in store.query("SELECT hash, generation FROM individuals")}
        failed = {r[0] for r in store.query("SELECT task_id FROM task_results WHERE NOT passed")}
    assert proposals, "every generation-1 parent failed a task: reflection must have proposed"
    for gen, _, task_id, backend, prompt, row, reason, child, used, edit in proposals:
        assert gen == 1 and backend == "retrieval" and task_id in failed and "failed: " in prompt
        assert (row is None and not edit) == reason.startswith("refused: ")
        assert used == (child is not None and hashes.get(child) == 1)  # used: its child was evaluated
        if row is not None:
            assert len(json.loads(row)) == 4


def test_a_resumed_run_learns_and_reflects_as_the_straight_run_did(ray_local: object, tmp_path: Path) -> None:
    """What a species learned lives in the driver, not in the checkpoint: a run stopped after
    generation 0 and resumed must still make the generation 1 the straight run made."""
    params = {"credit": 0.5, "reflection": 1.0}
    straight = _run(tmp_path / "a", "straight", 5, **params)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "learn.yaml").write_text(SUITE, encoding="utf-8")
    first = parse_config({
        "name": "resumed", "seed": 5, "generations": 1,
        "species": {"name": "tower", "params": {"depth": 1, "tasks": 2, "suite": str(tmp_path / "b" / "learn.yaml"),
                                                **params}},
        "population": {"size": 4},
        "objectives": [{"metric": "task_pass_rate", "direction": "max", "ref": 0.0}],
        "evaluation": {"timeout": 60, "actors": 2, "validation": False}})
    resolved = resolve(first)
    run_id, run_dir = create_run(resolved, tmp_path / "b" / "runs", run_id="resumed")
    run_evolution(resolved, run_id, run_dir)  # generation 0 only, checkpointed
    later = resolve(parse_config({**first.to_json_data(), "generations": 2}))  # a fresh driver: nothing learned yet
    run_evolution(later, run_id, run_dir)

    def generation_1(d: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        with Store.open(d, read_only=True) as store:
            return (store.query("SELECT hash FROM individuals WHERE generation = 1 ORDER BY 1"),
                    store.query("SELECT seq, parent, task_id, reason, child FROM proposals ORDER BY seq"))

    individuals, proposals = generation_1(straight)
    assert proposals  # the straight run reflected on generation 0's failures
    assert generation_1(run_dir) == (individuals, proposals)


def test_graph_children_run_and_what_variation_did_is_stored(ray_local: object, tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "graphs", 4, mutations={"graph_insert": 1.0, "graph_rewire": 1.0},
                   graph_crossover=1.0)
    with Store.open(run_dir, read_only=True) as store:
        variation = [json.loads(v) for (v,) in store.query("SELECT variation FROM generations ORDER BY generation")]
        rows = store.query("SELECT i.genome, e.status, e.error, (SELECT count(*) FROM task_results t "
                           "WHERE t.individual_id = i.individual_id) FROM individuals i "
                           "JOIN evaluations e USING (individual_id) WHERE i.generation = 1")
    assert all(set(v) <= {"graph_children", "graph_refused"} for v in variation)
    assert sum(v.get("graph_children", 0) for v in variation) >= 4
    graphs = [(status, error, tasks) for genome, status, error, tasks in rows if "graph" in json.loads(genome)]
    assert graphs, "no generation-1 child has a graph of its own"
    for status, error, tasks in graphs:  # a changed task level still works through its tasks
        assert status == "ok" and tasks == 2, error
