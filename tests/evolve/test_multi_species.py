"""Two species in one run: towers on evaluator actors, MicroAccordions on trainer actors that
learn from the towers' trajectories; every table holds both, each with its own fronts."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from accordion.checkpoint import load_checkpoint
from accordion.trial import TrialSpec
from evolve.config import parse_config, resolve
from evolve.evaluated import Evaluated
from evolve.loop import Observer, run_evolution
from evolve.runs import create_run
from evolve.store import Store
from evolve.trainers import make_pools, plan_actors
from harness_tower.genome import TowerGenome
from populations.base import blake2b_hex

pytestmark = [pytest.mark.ray, pytest.mark.tmux, pytest.mark.slow]

POP, GENS = 4, 3
SPECIES = ("tower", "accordion")


def _config(seed: int, generations: int) -> dict[str, Any]:
    return {
        "name": "both", "seed": seed, "generations": generations,
        "species": [
            {"name": "tower", "params": {"depth": 2, "tasks": 2}, "population": {"size": POP},
             "objectives": [{"metric": "syntax_ratio@h2", "direction": "max", "ref": 0.0},
                            {"metric": "max_diff_len@h2", "direction": "min", "ref": 2000}],
             "constraints": [{"metric": "keys_audit", "eq": 0}],
             "evaluation": {"timeout": 90, "actors": 1, "validation": False}},
            {"name": "accordion", "population": {"size": POP},
             "params": {"space": {"d_model": [16, 24], "blocks": [1, 2], "context": [32], "batch_size": [8]},
                        "fixed": {"steps": 40}, "trial": {"kdb_rounds": 8, "eval_batches": 2}},
             "objectives": [{"metric": "val_bpb", "ref": 9.0}, {"metric": "sec_per_mtok", "ref": 500.0},
                            {"metric": "param_bytes", "ref": 1e6}, {"metric": "bypass_rate", "ref": -0.05}],
             "evaluation": {"timeout": 90, "actors": 1}},
        ],
    }


@pytest.fixture(scope="module")
def both_run(ray_local: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    resolved = resolve(parse_config(_config(seed=3, generations=GENS)))
    run_id, run_dir = create_run(resolved, tmp_path_factory.mktemp("runs"), run_id="both")
    summary = run_evolution(resolved, run_id, run_dir)
    assert summary.status == "finished" and set(summary.hypervolumes) == set(SPECIES)
    return run_dir


def test_both_species_fill_every_table(both_run: Path) -> None:
    with Store.open(both_run, read_only=True) as store:
        parts = store.species()
        assert [p["species"] for p in parts] == list(SPECIES)
        assert store.run()["species"] == "tower,accordion"
        for part in parts:
            sp = part["species"]
            ind = store.query("SELECT individual_id, generation, hash, genome, parents FROM individuals "
                              "WHERE species = ? ORDER BY 1", [sp])
            ev = store.query("SELECT e.individual_id, e.status, e.objectives, e.trajectory, e.artifact, e.node "
                             "FROM evaluations e JOIN individuals i USING (run_id, individual_id) "
                             "WHERE i.species = ? ORDER BY 1", [sp])
            assert len(ind) == len(ev) == POP * GENS  # each individual evaluated once
            assert [r[0] for r in ind] == [r[0] for r in ev]
            assert all(r[0].startswith(f"{sp}-g") for r in ind)
            ids = {r[0] for r in ind}
            for _iid, gen, hash_, genome, parents in ind:  # genomes of their own species; parents of the same
                data = json.loads(genome)
                if sp == "tower":
                    assert TowerGenome.from_dict(data).hash() == hash_
                else:
                    assert TrialSpec.from_dict(data).to_dict() == data and blake2b_hex(genome) == hash_
                assert (gen == 0) == (parents == []) and all(p in ids for p in parents)
            assert all(len(r[2]) == len(part["objectives"]) and r[5] for r in ev)
            if sp == "tower":
                assert all(r[3] == f"trajectories/{r[0]}" and r[4] is None for r in ev)
            else:
                assert all(r[3] is None and r[4] == f"artifacts/{r[0]}" for r in ev if r[1] == "ok")
            gens = store.query("SELECT generation, evaluations, population, hypervolume FROM generations "
                               "WHERE species = ? ORDER BY 1", [sp])
            assert [(g, n, p) for g, n, p, _ in gens] == [(g, POP, POP) for g in range(GENS)]
            assert all(hv is not None for *_, hv in gens)
            front = store.query("SELECT individual_id FROM pareto_front WHERE species = ?", [sp])
            assert front and all(r[0] in ids for r in front)
        assert store.query("SELECT count(*) FROM evaluations")[0][0] == 2 * POP * GENS
        assert store.query("SELECT count(DISTINCT species) FROM metrics_long")[0][0] == 2


def test_status_and_report_read_each_species(both_run: Path, capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    from evolve.cli import main

    assert main(["status", str(both_run)]) == 0
    out = capsys.readouterr().out
    assert "tower: hypervolume, front" in out and "accordion: objectives" in out and "val_bpb (min)" in out
    assert main(["report", str(both_run), "--out", str(tmp_path / "r"), "--species", "accordion"]) == 0
    page = (tmp_path / "r" / "report.html").read_text()
    assert "(accordion)" in page and "val_bpb" in page and "syntax_ratio" not in page


def test_fronts_match_a_recomputation_per_species(both_run: Path) -> None:
    with Store.open(both_run, read_only=True) as store:
        for part in store.species():
            sign = np.array([-1.0 if o["direction"] == "max" else 1.0 for o in part["objectives"]])
            for g in range(GENS):
                rows = store.query("""SELECT f.individual_id, f.rank, e.objectives, e.feasible
                                      FROM fronts f JOIN evaluations e USING (run_id, individual_id)
                                      JOIN individuals i USING (run_id, individual_id)
                                      WHERE f.generation = ? AND i.species = ? ORDER BY 1""", [g, part["species"]])
                assert len(rows) == POP  # the surviving population of this species alone
                feasible = [r for r in rows if r[3]]
                if feasible:
                    F = np.array([r[2] for r in feasible], dtype=float) * sign
                    first = {feasible[k][0] for k in NonDominatedSorting().do(F, only_non_dominated_front=True)}
                    assert {r[0] for r in rows if r[1] == 0} == first


def test_accordions_train_on_the_tower_trajectories_of_earlier_generations(both_run: Path) -> None:
    with Store.open(both_run, read_only=True) as store:
        towers = dict(store.query("SELECT generation, count(*) FROM evaluations WHERE individual_id LIKE 'tower-%' "
                                  "AND trajectory IS NOT NULL GROUP BY 1"))
        rows = store.query("SELECT individual_id, generation, status, metrics FROM evaluations "
                           "WHERE individual_id LIKE 'accordion-%' ORDER BY 1")
        events = [r[0] for r in store.query("SELECT message FROM events WHERE kind = 'corpus' ORDER BY event_id")]
    assert len(events) == GENS and "from tower-g000-000" in events[1]
    assert sum(status == "ok" for _, _, status, _ in rows) >= POP * GENS - 1
    for iid, gen, status, metrics in rows:
        m = json.loads(metrics)
        seen = sum(n for g, n in towers.items() if g < gen)
        assert m["corpus_trajectories"] == seen, iid  # every tower trajectory of earlier generations
        assert m["corpus_from_generation"] == gen - 1
        if gen == 0:  # the cold-start text alone
            assert m["corpus_documents"] == 1 and m["corpus_trajectory_bytes"] == 0
        else:  # the held-out split is whole trajectories, some of them
            assert m["corpus_trajectory_bytes"] > 100_000 and 1 <= m["corpus_heldout_trajectories"] < seen
            if status == "ok":
                assert m["heldout"] == 1.0 and m["corpus_heldout_bytes"] > 10_000
    ck = load_checkpoint(both_run / "artifacts" / "accordion-g002-000" / "model.pt")
    assert ck.meta["individual_id"] == "accordion-g002-000"
    assert [s for s in ck.meta["sources"] if s.startswith("tower-")] and ck.meta["sources"][0] == "builtin"


def test_trainer_actors_were_placed_on_cpu(both_run: Path, ray_local: object) -> None:
    with Store.open(both_run, read_only=True) as store:
        placed = [r[0] for r in store.query("SELECT message FROM events WHERE kind = 'actors_placed' ORDER BY 1")]
        gpu = store.query("SELECT DISTINCT metrics ->> '$.gpu' FROM evaluations "
                          "WHERE individual_id LIKE 'accordion-%'")
    assert placed == ["accordion: 1 trainer actor(s) on CPU (num_cpus=1)",
                      "tower: 1 evaluator actor(s) on CPU (num_cpus=1)"]
    assert gpu == [("0.0",)]

    parts = resolve(parse_config(_config(seed=1, generations=1))).parts
    pools = make_pools(parts, run_id="placement", cpus=2, gpus=0, embedded=False, on_event=lambda sp: lambda *a: None)
    try:
        trainer = pools[1]
        assert trainer.role == "trainer" and trainer.actor_options == {"num_cpus": 1.0}
        placements = trainer.wait_ready()
        assert placements[0]["resources"] == {"CPU": 1.0} and placements[0]["gpu_ids"] == []
    finally:
        for pool in pools:
            pool.close()


def test_the_actor_plan_gives_trainers_gpus_where_the_cluster_has_them() -> None:
    """Where the cluster has GPUs the same species ask for one per trainer (planned, not placed)."""
    from dataclasses import replace

    parts = resolve(parse_config(_config(seed=1, generations=1))).parts
    free = [replace(p, evaluation=p.evaluation.model_copy(update={"actors": None})) for p in parts]
    assert plan_actors(free, cpus=16, gpus=2, embedded=False) == [(14, {"num_cpus": 1.0}),
                                                                  (2, {"num_cpus": 1.0, "num_gpus": 1.0})]
    assert plan_actors(free, cpus=2, gpus=0, embedded=True) == [(1, {"num_cpus": 1.0}), (1, {"num_cpus": 1.0})]
    assert plan_actors(free[1:], cpus=4, gpus=0, embedded=True) == [(4, {"num_cpus": 1.0})]


class StopInGeneration(Observer):
    """Interrupt the driver once `after` evaluations of `generation` have landed (and been staged)."""

    def __init__(self, generation: int, after: int) -> None:
        self.generation, self.after, self.current, self.seen = generation, after, -1, 0

    def generation_started(self, generation: int, size: int, reused: int) -> None:
        self.current = generation

    def evaluated(self, result: Evaluated, feasible: bool) -> None:
        if self.current == self.generation:
            self.seen += 1
            if self.seen >= self.after:
                raise KeyboardInterrupt


def test_an_interrupted_run_of_both_resumes_with_nothing_lost_or_repeated(ray_local: object, tmp_path: Path) -> None:
    resolved = resolve(parse_config(_config(seed=8, generations=2)))
    run_id, run_dir = create_run(resolved, tmp_path, run_id="resumed")
    with pytest.raises(KeyboardInterrupt):
        run_evolution(resolved, run_id, run_dir, observer=StopInGeneration(1, after=3))
    with Store.open(run_dir, read_only=True) as store:
        staged = {r[0] for r in store.query("SELECT individual_id FROM staged")}
        assert store.last_generation(run_id) == 0 and len(staged) >= 1
    summary = run_evolution(resolved, run_id, run_dir)
    assert summary.status == "finished" and summary.generations == 2
    with Store.open(run_dir, read_only=True) as store:
        ids = [r[0] for r in store.query("SELECT individual_id FROM evaluations ORDER BY 1")]
        assert len(ids) == len(set(ids)) == 2 * POP * 2  # none lost, none stored twice
        assert store.query("SELECT count(*) FROM staged")[0][0] == 0
        assert store.query("SELECT species, count(*) FROM generations GROUP BY 1 ORDER BY 1") == [
            ("accordion", 2), ("tower", 2)]
        reused = store.query("SELECT sum(reused) FROM generations WHERE generation = 1")[0][0]
        assert reused == len(staged)  # what had landed before the interruption was kept, not redone
        corpora = store.query("SELECT DISTINCT metrics ->> '$.corpus_trajectories' FROM evaluations "
                              "WHERE individual_id LIKE 'accordion-g001-%'")
        assert corpora == [(str(POP),)]  # before and after the restart: the same generation-0 trajectories


def test_the_shipped_config_and_mistakes_in_a_list_of_species(tmp_path: Path) -> None:
    from evolve.config import load_config
    from evolve.errors import EvolveError
    from tests.evolve.conftest import REPO, write_config

    path = REPO / "configs" / "both_species.yaml"
    parts = resolve(load_config(path), where=str(path)).parts
    assert [p.name for p in parts] == list(SPECIES) and all(p.ref_point is not None for p in parts)
    assert parts[1].species.accelerated and parts[1].species.consumes == ("tower",)

    def error(data: dict[str, Any]) -> str:
        path = write_config(tmp_path / "x.yaml", data)
        with pytest.raises(EvolveError) as info:
            resolve(load_config(path), where=str(path))
        return str(info.value).replace(str(tmp_path) + "/", "")

    good = _config(seed=1, generations=2)
    twice = {**good, "species": [good["species"][1], good["species"][1]]}
    assert error(twice) == "x.yaml: species[1].name: species accordion is listed twice (also species[0])"
    shared = {**good, "objectives": [{"metric": "val_bpb"}]}
    assert error(shared).startswith("x.yaml: objectives: in a run with a list of species, give each species its own")
    no_pop = {**good, "species": [{k: v for k, v in good["species"][0].items() if k != "population"}]}
    assert error(no_pop) == "x.yaml: population: is required (or give species[0] its own population)"
    bad_metric = {**good, "species": [good["species"][0], {**good["species"][1], "objectives": [{"metric": "bpb"}]}]}
    assert error(bad_metric).startswith(
        "x.yaml: species[1].objectives[0].metric: unknown metric 'bpb' for species accordion")
    assert error({**good, "species": [{"name": "tower", "colour": 1}]}).startswith(
        "x.yaml: species[0].colour: unknown field (known: name, params, population")
