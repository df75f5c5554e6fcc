"""Rendering genomes into level programs; genome validation and canonical form."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from harness_tower.errors import GenomeError
from harness_tower.genome import TowerGenome, load_genome
from harness_tower.render import render

SEEDS = sorted((Path(__file__).resolve().parents[2] / "populations" / "seeds").glob("*.json"))


def _child_source(source: str, level: int) -> str:
    module: dict[str, object] = {"__name__": "rendered"}
    exec(compile(source, "h.py", "exec"), module)
    return module["child_source"](level)  # type: ignore[operator,no-any-return]


def test_seed_set_covers_modes_and_sources() -> None:
    genomes = [load_genome(str(p)) for p in SEEDS]
    assert {(g.content_source, g.typing_mode) for g in genomes} >= {
        ("literal", "line"), ("literal", "statement"), ("kernel", "line")}
    assert any("kernel" in p.name for p in SEEDS)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.stem)
def test_every_level_parses_and_writes_exactly_its_child(seed: Path) -> None:
    genome = load_genome(str(seed))
    for n in range(1, 5):
        source = render(genome, n)
        ast.parse(source)
        assert "__file__" not in source and "argv[0]" not in source
        if n >= 2:
            assert _child_source(source, n - 1) == render(genome, n - 1)


def test_kernel_levels_have_one_size_literal_levels_grow() -> None:
    kernel = TowerGenome(content_source="kernel")
    sizes = [len(render(kernel, n).encode()) for n in range(2, 6)]
    assert len(set(sizes)) == 1
    literal = TowerGenome(content_source="literal")
    sizes = [len(render(literal, n).encode()) for n in range(1, 6)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_canonical_json_and_hash_are_stable() -> None:
    a = TowerGenome()
    b = TowerGenome.from_dict(json.loads(a.canonical_json()))
    assert a == b and a.hash() == b.hash()
    assert a.replace(chunk=8).hash() != a.hash()


@pytest.mark.parametrize("data, message", [
    ([], "expected a JSON object"),
    ({"typing_mode": "paste"}, "typing_mode must be one of"),
    ({"chunk": 17}, "chunk must be an integer in 1..16"),
    ({"chunk": True}, "chunk must be an integer"),
    ({"colour": 1}, "unknown field"),
    ({"experience": {"decision": [["q", "k"]]}}, r"experience.decision\[0\] must be"),
    ({"experience": {"decision": [], "command": [["q", "k", "v"]]}}, "at least one entry"),
    ({"experience": {"nonsense": []}}, "unknown experience table"),
    ({"child_timeout": -1}, "child_timeout must be"),
    ({"task_command": "a\nb"}, "task_command"),
])
def test_malformed_genomes_are_refused_with_a_reason(data: object, message: str) -> None:
    with pytest.raises(GenomeError, match=message):
        TowerGenome.from_dict(data)


def test_load_genome_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GenomeError, match="bad.json: not valid JSON"):
        load_genome(str(bad))
    with pytest.raises(GenomeError, match="no such genome file"):
        load_genome(str(tmp_path / "missing.json"))
