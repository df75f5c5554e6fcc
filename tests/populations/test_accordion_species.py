"""The accordion species: valid genomes with a canonical form, deterministic sampling and
variation, a corpus held out by whole trajectories, and one real (tiny) training trial."""
from __future__ import annotations

import json
import random
import re
import subprocess
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from accordion.trial import GROWTHS, STRATEGIES, TrialSpec
from populations import make_species
from populations.accordion import (
    CHECKPOINT_NAME,
    SPACE,
    AccordionSpecies,
    CorpusContext,
)
from populations.base import EvalItem, Product, blake2b_hex
from populations.errors import SpeciesError
from populations.operators import hyper

# a narrow, fast corner of the space: every trial trains for 30 steps
FAST = {"space": {"d_model": [16, 24], "blocks": [1, 2], "context": [32], "batch_size": [8]},
        "fixed": {"steps": 30}, "trial": {"kdb_rounds": 8, "eval_batches": 2}}


@pytest.fixture(scope="module")
def species() -> AccordionSpecies:
    sp = make_species("accordion", FAST)
    assert isinstance(sp, AccordionSpecies)
    return sp


def _in_space(sp: AccordionSpecies, g: TrialSpec) -> None:
    again = TrialSpec.from_dict(json.loads(sp.canonical_json(g)))  # passes the spec's own validation
    assert again == g and sp.hash(again) == sp.hash(g)
    for name, gene in sp.space.items():
        if name in sp.fixed:
            assert getattr(g, name) == sp.fixed[name]
        elif not name.startswith("max_") and name != "heads":  # growth caps and heads are repaired
            value = getattr(g, name)
            assert gene.contains(list(value) if name == "grow_cycle" else value), (name, value)
    assert g.d_model % g.heads == 0 and g.max_blocks >= g.blocks and g.max_d_model >= g.d_model


def test_the_space_covers_every_gene_and_the_constants_match_the_trainer() -> None:
    from accordion.mutator import STRATEGIES as MUTATOR_STRATEGIES
    from accordion.train import GROWTHS as TRAIN_GROWTHS

    assert set(SPACE) == {f.name for f in fields(TrialSpec)}
    assert GROWTHS == TRAIN_GROWTHS and STRATEGIES == MUTATOR_STRATEGIES


def test_genomes_are_validated_with_the_field_named(species: AccordionSpecies) -> None:
    good = species.reference().to_dict()
    changes: list[tuple[dict[str, object], str]] = [
        ({"heads": 5}, "d_model=24 is not divisible by heads=5"), ({"steps": 0}, "steps must be an integer >= 1"),
        ({"grow_cycle": ["width", "width"]}, "grow_cycle must list distinct kinds"),
        ({"mutator": "fire"}, "mutator must be one of"), ({"lr": -1.0}, "lr must be in"),
        ({"quantize": "yes"}, "quantize must be true or false"),
        ({"max_blocks": 0}, "max_blocks must be an integer >= 1"), ({"colour": 1}, "unknown field(s) colour")]
    for change, words in changes:
        with pytest.raises(SpeciesError, match="accordion: trial spec: " + re.escape(words)):
            species.from_data({**good, **change})
    with pytest.raises(SpeciesError, match="expected an object"):
        species.from_data([1, 2])


def test_canonical_json_and_hash(species: AccordionSpecies) -> None:
    g = species.reference()
    text = species.canonical_json(g)
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert species.hash(g) == blake2b_hex(text) and len(species.hash(g)) == 32
    assert species.from_data(json.loads(text)) == g
    assert species.hash(g.replace(lr=g.lr * 2)) != species.hash(g)
    assert json.loads(text)["grow_cycle"] == list(g.grow_cycle)


def test_species_parameters_are_checked() -> None:
    with pytest.raises(SpeciesError, match="space: unknown gene 'width'"):
        AccordionSpecies(space={"width": [1, 2]})
    with pytest.raises(SpeciesError, match=r"space.steps: give \[low, high\]"):
        AccordionSpecies(space={"steps": [1, 2, 3]})
    with pytest.raises(SpeciesError, match="space.quantize: a true/false gene is pinned with `fixed`"):
        AccordionSpecies(space={"quantize": [True]})
    with pytest.raises(SpeciesError, match="fixed: unknown gene"):
        AccordionSpecies(fixed={"colour": 1})
    with pytest.raises(SpeciesError, match="fixed: trial spec: steps must be an integer >= 1"):
        AccordionSpecies(fixed={"steps": -3})
    with pytest.raises(SpeciesError, match="trial: unknown setting"):
        AccordionSpecies(trial={"epochs": 3})


def test_sampling_is_valid_distinct_and_deterministic(species: AccordionSpecies) -> None:
    a = species.sample(12, np.random.default_rng(4))
    b = species.sample(12, np.random.default_rng(4))
    assert [species.hash(g) for g in a] == [species.hash(g) for g in b]
    assert len({species.hash(g) for g in a}) == 12
    assert a[0] == species.reference()  # the hand-set reference shape comes first
    assert [species.hash(g) for g in species.sample(12, np.random.default_rng(5))] != [species.hash(g) for g in a]
    for g in a:
        _in_space(species, g)


def test_variation_keeps_genomes_valid_and_is_deterministic(species: AccordionSpecies) -> None:
    parents = species.sample(8, np.random.default_rng(1))
    pairs = list(zip(parents[::2], parents[1::2]))
    kids = species.mate(pairs, np.random.default_rng(2))
    assert kids == species.mate(pairs, np.random.default_rng(2))
    mutants = species.mutate(parents, np.random.default_rng(3))
    assert mutants == species.mutate(parents, np.random.default_rng(3))
    assert sum(m != p for m, p in zip(mutants, parents)) >= 6  # a mutant differs in at least one gene (mostly)
    for g in [c for pair in kids for c in pair] + mutants:
        _in_space(species, g)
    for (a, b), (c1, c2) in zip(pairs, kids):  # uniform crossover: every gene from one parent or the other
        for name in species.varied:
            assert {getattr(c1, name), getattr(c2, name)} <= {getattr(a, name), getattr(b, name)} or name == "heads"


@pytest.mark.parametrize("seed", range(20))
def test_gene_operators_stay_in_their_space(seed: int) -> None:
    r = random.Random(seed)
    genes = hyper.sample(SPACE, r)
    for _ in range(30):
        genes = hyper.mut_genes(genes, r, space=SPACE, indpb=0.3)
        other = hyper.sample(SPACE, r)
        genes, _ = hyper.cx_uniform(genes, other, r, space=SPACE)
        for name, gene in SPACE.items():
            assert gene.contains(genes[name]), (name, genes[name])


def _trajectory(repo: Path, text: str) -> Path:
    (repo / ".captures" / "h1_writer").mkdir(parents=True)
    for k in range(3):
        (repo / "h1.py").write_text(f"print({text!r})\n" * (k + 1))
        (repo / ".captures" / "h1_writer" / f"{k:06d}.txt").write_text(f"$ {text} {k}\n")
        subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-qm", f"h1_writer: {k}"], check=True)
    return repo


def test_the_corpus_holds_out_whole_trajectories(species: AccordionSpecies, tmp_path: Path) -> None:
    products = []
    for k in range(6):
        repo = tmp_path / f"t{k}"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        subprocess.run(["git", "-C", str(repo), "config", "user.email", "t@localhost"], check=True)
        subprocess.run(["git", "-C", str(repo), "config", "user.name", "t"], check=True)
        products.append(Product("tower", f"tower-g000-{k:03d}", 0, _trajectory(repo, f"echo trajectory {k}")))
    ctx = species.context(1, products + [Product("numeric", "x", 0, tmp_path)])  # other species are ignored
    assert isinstance(ctx, CorpusContext)
    assert ctx.sources == [p.individual_id for p in products]
    s = ctx.summary
    assert s["corpus_trajectories"] == 6 and s["corpus_from_generation"] == 0 and s["corpus_dropped"] == 0
    assert 1 <= s["corpus_heldout_trajectories"] < 6
    by_group: dict[str, set[bool | None]] = {}
    for d in ctx.documents:
        by_group.setdefault(d.group, set()).add(d.heldout)
    assert by_group.pop("builtin") == {None}  # the cold-start text is split by its tail
    assert all(len(flags) == 1 for flags in by_group.values())  # a trajectory is held out whole, or not at all
    assert sum(flags == {True} for flags in by_group.values()) == s["corpus_heldout_trajectories"]
    again = species.context(1, products)  # the same products give the same split (read once, cached)
    assert [(d.name, d.heldout) for d in again.documents] == [(d.name, d.heldout) for d in ctx.documents]
    assert species.context(0, []).summary["corpus_trajectories"] == 0


@pytest.fixture(scope="module")
def trial(species: AccordionSpecies, tmp_path_factory: pytest.TempPathFactory) -> tuple[EvalItem, object]:
    import torch

    g = species.reference()
    item = EvalItem("accordion-g000-000", g, species.hash(g), 11)
    threads = torch.get_num_threads()
    out = species.evaluate([item], workdir=tmp_path_factory.mktemp("w"), timeout=120, run_id="t")
    assert len(out) == 1 and out[0].status == "ok", out[0].error
    assert torch.get_num_threads() == threads  # one thread for the trial only, as on a trainer actor
    return item, out[0]


def test_one_real_evaluation_reports_every_objective(species: AccordionSpecies, trial: tuple[EvalItem, object]) -> None:
    _, outcome = trial
    m = outcome.metrics  # type: ignore[attr-defined]
    for metric in species.default_objectives() + [c.metric for c in species.default_constraints()]:
        assert isinstance(m[metric], (int, float)) and np.isfinite(m[metric]), metric
    assert 0 < m["val_bpb"] < 9 and m["sec_per_mtok"] > 0 and m["param_bytes"] > 0
    assert 0.0 <= m["bypass_rate"] <= 1.0 and m["divergence_ratio"] >= 0.0
    assert m["tokens"] == 30 * 8 * 32 and m["gpu"] == 0.0 and m["heldout"] == 1.0
    assert m["corpus_trajectories"] == 0 and m["corpus_bytes"] > 0  # alone: the cold-start corpus
    for metric in m:
        assert species.check_metric(metric) is None, metric
    assert set(outcome.artifacts) == {CHECKPOINT_NAME}  # type: ignore[attr-defined]


def test_the_same_seed_gives_the_same_model(species: AccordionSpecies, trial: tuple[EvalItem, object],
                                            tmp_path: Path) -> None:
    item, outcome = trial
    again = species.evaluate([item], workdir=tmp_path, timeout=120, run_id="t")[0]
    for metric in ("val_bpb", "param_bytes", "bypass_rate", "divergence_ratio", "false_positives", "tokens"):
        assert again.metrics[metric] == outcome.metrics[metric], metric  # type: ignore[attr-defined]


@pytest.mark.tmux
@pytest.mark.slow
def test_a_tower_expert_generates_with_the_trained_checkpoint(trial: tuple[EvalItem, object], short_tmp: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from accordion.checkpoint import load_checkpoint
    from harness_tower.backends import accordion
    from harness_tower.backends.relay import ExpertEndpoints
    from harness_tower.evaluate import evaluate
    from harness_tower.genome import TowerGenome
    from harness_tower.render import render

    monkeypatch.setenv("TOWER_EXPERT_CACHE", str(short_tmp / "cache"))
    _, outcome = trial
    ck = short_tmp / "trained.pt"
    ck.write_bytes(outcome.artifacts[CHECKPOINT_NAME])  # type: ignore[attr-defined]
    assert load_checkpoint(ck).meta["individual_id"] == "accordion-g000-000"
    genome = TowerGenome(content_source="expert", backend="accordion", max_lines=4,
                         backend_config={"max_tokens": 16, "temperature": 0})
    result = evaluate(genome, depth=2, out_dir=short_tmp / "tower", timeout=120,
                      experts=ExpertEndpoints(accordion_checkpoint=str(ck)))  # the checkpoint: the trusted side's
    # a model trained for seconds writes noise: the tower is recorded and scored either way
    assert result.status != "timeout" and result.trajectory is not None, result.error
    assert (result.status == "ok") == (result.error is None)  # a failure says why
    assert "expert backend accordion" not in (result.error or "")
    assert result.metrics["commits@h2"] > 0 and result.metrics["keys_audit"] == 0  # type: ignore[operator]
    assert str(ck) in accordion.loaded()  # the sandbox's requests were answered by this checkpoint, here
    assert result.metrics["expert_requests"] >= 1  # counted by the evaluator's relay
    assert (result.trajectory / "h1.py").read_text() != render(genome, 1)  # not what retrieval would type
