"""The tower species: valid variation, deterministic with a seed, metric checks, a real evaluation."""
from __future__ import annotations

import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness_tower.genome import ExperienceEntry, TowerGenome
from populations import make_species
from populations.base import EvalItem
from populations.errors import SpeciesError
from populations.operators import crossover, mutation
from populations.tower import TowerSpecies

MUTATIONS = ["perturb_weights", "replace_entry", "insert_entry", "delete_entry", "flip_typing_mode",
             "flip_content_source", "change_chunk", "change_topk", "change_max_iterations"]


@pytest.fixture(scope="module")
def tower() -> TowerSpecies:
    sp = make_species("tower", {"depth": 2})
    assert isinstance(sp, TowerSpecies)
    return sp


def _valid(g: TowerGenome) -> None:
    again = TowerGenome.from_dict(g.to_dict())  # passes the genome's own validation
    assert again == g and again.hash() == g.hash()
    assert g.experience["decision"] and g.experience["command"]
    assert g.content_source in ("literal", "kernel")  # "expert" is not in this species' choices


def test_every_operator_keeps_genomes_valid_over_many_random_applications(tower: TowerSpecies) -> None:
    r = random.Random(0)
    genomes = list(tower.seed_genomes)
    for step in range(600):
        g = r.choice(genomes)
        if step % 3 == 0:
            a, b = crossover.cx_fields(g, r.choice(genomes), r)
            a, b = crossover.cx_experience(a, b, r)
            new = [a, b]
        else:
            new = [getattr(tower.toolbox, r.choice(MUTATIONS))(g, r)]
        for child in new:
            _valid(child)
            for entries in child.experience.values():  # no row twice: copies would crowd the table out
                assert len({(e.query, e.value) for e in entries}) == len(entries)
        genomes = (genomes + new)[-40:]


def test_delete_never_empties_a_required_table(tower: TowerSpecies) -> None:
    g = tower.seed_genomes[0]
    r = random.Random(1)
    for _ in range(50):
        g = mutation.delete_entry(g, r)
    assert len(g.experience["decision"]) == 1 and len(g.experience["command"]) == 1


def test_field_operators_move_within_bounds() -> None:
    r = random.Random(2)
    g = TowerGenome(chunk=16, topk=8)
    for _ in range(100):
        g = mutation.change_chunk(mutation.change_topk(g, r), r)
        assert 1 <= g.chunk <= 16 and 1 <= g.topk <= 8
    assert mutation.flip_typing_mode(TowerGenome(typing_mode="line"), r).typing_mode == "statement"


def test_sample_starts_with_the_seeds_and_is_distinct(tower: TowerSpecies) -> None:
    pop = tower.sample(9, np.random.default_rng(3))
    assert [g.hash() for g in pop[:len(tower.seed_genomes)]] == [g.hash() for g in tower.seed_genomes]
    assert len({g.hash() for g in pop}) == 9


def test_the_same_seed_gives_the_same_variation(tower: TowerSpecies) -> None:
    def once(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        pop = tower.sample(6, rng)
        kids = [c for pair in tower.mate(list(zip(pop[::2], pop[1::2])), rng) for c in pair]
        return [g.hash() for g in pop + kids + tower.mutate(kids, rng)]

    assert once(4) == once(4)
    assert once(4) != once(5)


def test_canonical_json_and_hash_are_the_genomes_own(tower: TowerSpecies) -> None:
    g = tower.seed_genomes[0]
    assert tower.canonical_json(g) == g.canonical_json()
    assert tower.hash(g) == g.hash()
    assert tower.from_data(tower.to_data(g)) == g
    with pytest.raises(SpeciesError, match="topk"):
        tower.from_data({**tower.to_data(g), "topk": 99})


def test_metric_checks_name_what_is_wrong() -> None:
    d2 = TowerSpecies(depth=2)
    d3 = TowerSpecies(depth=3)
    assert d2.check_metric("syntax_ratio@h2") is None
    assert d3.check_metric("bytes_convergence") is None
    assert "depth >= 3" in (d2.check_metric("bytes_convergence") or "")
    assert "level must be h1..h2" in (d2.check_metric("avg_interval@h3") or "")
    assert "reported per level" in (d2.check_metric("syntax_ratio") or "")
    assert "unknown metric" in (d2.check_metric("speed@h2") or "")
    assert "drop '@h2'" in (d2.check_metric("task_correct@h2") or "")
    assert d2.direction("syntax_ratio@h2") == "max" and d2.direction("code_bytes@h2") is None


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(SpeciesError, match="depth"):
        TowerSpecies(depth=0)
    with pytest.raises(SpeciesError, match="content_sources"):
        TowerSpecies(content_sources=("telepathy",))
    with pytest.raises(SpeciesError, match="no such genome file"):
        TowerSpecies(seeds=["does_not_exist"])
    with pytest.raises(SpeciesError, match="unknown operator"):
        TowerSpecies(mutations={"teleport": 1.0})
    with pytest.raises(SpeciesError, match="isolation must be auto, bwrap or process"):
        TowerSpecies(isolation="sideways")


@pytest.mark.tmux
@pytest.mark.slow
def test_evaluation_returns_metrics_and_a_trajectory_bundle(tower: TowerSpecies, tmp_path: Path) -> None:
    from evolve.trajectories import unpack_bundle

    g = tower.seed_genomes[0]
    draw = {"suite": "shell", "split": "train", "tasks": ["print-hello-world", "print-sum"]}
    (out,) = tower.evaluate([EvalItem("ind-1", g, g.hash(), 42, draw)], workdir=tmp_path / "box", timeout=90,
                            run_id="t")
    assert out.status == "ok", out.error
    assert out.metrics["keys_audit"] == 0 and out.metrics["tasks_sampled"] == 2
    assert out.tasks is not None and [(t["task_id"], t["passed"]) for t in out.tasks] == [
        ("print-hello-world", True), ("print-sum", False)]  # the seeds know no sum
    assert out.bundle and out.bundle.startswith(b"# v2 git bundle")
    assert not (tmp_path / "box" / "ind-1").exists()  # the sandbox is gone
    rel = unpack_bundle(out.bundle, tmp_path / "run", "ind-1")
    repo = tmp_path / "run" / rel
    log = subprocess.run(["git", "-C", str(repo), "log", "--format=%s"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert log[-1] == "init" and any(s.startswith("h2_writer:") for s in log)
    assert (repo / "h1.py").exists() and (repo / "h2.py").exists()
    from harness_tower.sandbox import resolve_isolation
    assert out.isolation == resolve_isolation("auto")


@pytest.mark.tmux
def test_the_configured_isolation_is_the_one_evaluations_run_under(tmp_path: Path) -> None:
    species = make_species("tower", {"depth": 1, "isolation": "process"})
    g = species.seed_genomes[0]  # type: ignore[attr-defined]
    (out,) = species.evaluate([EvalItem("ind-1", g, g.hash(), 1)], workdir=tmp_path / "box", timeout=60, run_id="t")
    assert out.status == "ok" and out.isolation == "process", out.error


def test_harvested_sessions_join_the_variation_library(tmp_path: Path) -> None:
    import json

    good, bad = tmp_path / "experience.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"experience": {"command": [["List what is here.", "seen", "ls -1", 2.0]]}}))
    bad.write_text(json.dumps({"experience": {"command": [["List what is here.", 3, "ls", 1.0]]}}))
    species = TowerSpecies(harvested=[str(good)])
    assert ("command", ExperienceEntry("List what is here.", "seen", "ls -1", 2.0)) in species.library
    assert not any(e.value == "ls -1" for _, e in TowerSpecies().library)
    with pytest.raises(SpeciesError, match=r"harvested: .*bad.json: .*command\[0\]: query, key and value must be"):
        TowerSpecies(harvested=[str(bad)])


def test_credit_assignment_moves_the_weights_of_the_rows_that_served_a_task() -> None:
    species = TowerSpecies(seeds=["literal_line"], credit=0.5)
    genome = species.seed_genomes[0]
    tasks = [{"task_id": "print-hello-world", "passed": True, "typed": "echo hello world\n"},
             # the row `grep -c ERROR {file}`, filled from this instruction, is what was typed: it failed
             {"task_id": "text-count-errors", "passed": False, "typed": "grep -c ERROR app.log\n"},
             {"task_id": "print-sum", "passed": False, "typed": ""}]  # nothing typed: no row to blame
    learned = species.learn(genome, tasks)
    assert learned is not None
    before = {e.value: e.weight for e in genome.experience["command"]}
    after = {e.value: e.weight for e in learned.experience["command"]}
    assert after["echo hello world"] == before["echo hello world"] * 1.5
    assert after["grep -c ERROR {file}"] == before["grep -c ERROR {file}"] * 0.5
    assert {v: w for v, w in after.items() if v not in ("echo hello world", "grep -c ERROR {file}")} == {
        v: w for v, w in before.items() if v not in ("echo hello world", "grep -c ERROR {file}")}
    assert learned.experience["decision"] == genome.experience["decision"]
    assert TowerSpecies(seeds=["literal_line"]).learn(genome, tasks) is None  # credit 0: off
    assert species.learn(genome, tasks[2:]) is None  # nothing served: nothing learned
    with pytest.raises(SpeciesError, match="credit must be a learning rate in 0..1"):
        TowerSpecies(credit=2)
