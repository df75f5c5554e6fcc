"""The numeric species: canonical form, deterministic variation within bounds, evaluation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from populations import make_species
from populations.base import EvalItem, blake2b_hex, canonical_json
from populations.errors import SpeciesError
from populations.numeric import NumericSpecies


@pytest.fixture
def zdt1() -> NumericSpecies:
    sp = make_species("numeric", {"problem": "zdt1", "n_var": 6})
    assert isinstance(sp, NumericSpecies)
    return sp


def test_canonical_json_is_the_json_of_the_genome_and_hash_is_blake2b(zdt1: NumericSpecies) -> None:
    for x in zdt1.sample(20, np.random.default_rng(0)):
        text = zdt1.canonical_json(x)
        assert text == canonical_json(zdt1.to_data(x)) == json.dumps(x.tolist(), separators=(",", ":"))
        assert zdt1.hash(x) == blake2b_hex(text)
        assert np.array_equal(zdt1.from_data(json.loads(text)), x)


def test_same_generator_seed_gives_the_same_sample_and_variation(zdt1: NumericSpecies) -> None:
    def once(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        pop = zdt1.sample(10, rng)
        kids = [c for pair in zdt1.mate(list(zip(pop[::2], pop[1::2])), rng) for c in pair]
        return [zdt1.hash(x) for x in pop + kids + zdt1.mutate(kids, rng)]

    assert once(5) == once(5)
    assert once(5) != once(6)


def test_variation_stays_within_bounds_and_changes_genes(zdt1: NumericSpecies) -> None:
    rng = np.random.default_rng(1)
    pop = zdt1.sample(200, rng)
    kids = [c for pair in zdt1.mate(list(zip(pop[::2], pop[1::2])), rng) for c in pair]
    mutants = zdt1.mutate(kids, rng)
    X = np.stack(mutants)
    assert np.all(X >= zdt1.low) and np.all(X <= zdt1.up)
    changed = np.mean([not np.array_equal(a, b) for a, b in zip(pop, kids)])
    assert 0.5 < changed <= 1.0


def test_genomes_are_immutable(zdt1: NumericSpecies) -> None:
    x = zdt1.sample(1, np.random.default_rng(0))[0]
    with pytest.raises(ValueError):
        x[0] = 0.5


def test_evaluate_reports_objectives_as_metrics(zdt1: NumericSpecies, tmp_path: Path) -> None:
    pop = zdt1.sample(4, np.random.default_rng(2))
    items = [EvalItem(f"i{k}", x, zdt1.hash(x), k) for k, x in enumerate(pop)]
    outs = zdt1.evaluate(items, workdir=tmp_path, timeout=5, run_id="t")
    F = zdt1.problem.evaluate(np.stack(pop))
    assert [o.individual_id for o in outs] == ["i0", "i1", "i2", "i3"]
    for o, f in zip(outs, F):
        assert o.status == "ok"
        assert o.metrics == {"f1": pytest.approx(f[0]), "f2": pytest.approx(f[1])}


def test_constrained_problems_report_constraints() -> None:
    sp = make_species("numeric", {"problem": "bnh"})
    assert sp.default_objectives() == ["f1", "f2"]
    assert [c.metric for c in sp.default_constraints()] == ["g1", "g2"]
    assert sp.check_metric("g1") is None
    assert "unknown metric 'f3'" in (sp.check_metric("f3") or "")


def test_bad_parameters_are_one_clear_error() -> None:
    with pytest.raises(SpeciesError, match="cannot build problem 'zdt99'"):
        make_species("numeric", {"problem": "zdt99"})
    with pytest.raises(SpeciesError, match="bad parameters"):
        make_species("numeric", {"problem": "zdt1", "colour": "red"})
    with pytest.raises(SpeciesError, match="unknown species 'fish'"):
        make_species("fish")
    with pytest.raises(SpeciesError, match="outside the problem's bounds"):
        make_species("numeric", {"problem": "zdt1", "n_var": 2}).from_data([2.0, 0.0])
