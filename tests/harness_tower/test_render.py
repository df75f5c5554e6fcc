"""Rendering genomes into level programs; genome validation and canonical form."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from harness_tower import ft
from harness_tower.errors import GenomeError
from harness_tower.genome import ExperienceEntry, TowerGenome, load_genome
from harness_tower.render import (
    H1_TEMPLATE,
    fill,
    fill_percent,
    render,
    writer_contexts,
)

SEEDS = sorted((Path(__file__).resolve().parents[2] / "populations" / "seeds").glob("*.json"))


def _child_source(source: str, level: int) -> str:
    module: dict[str, object] = {"__name__": "rendered"}
    exec(compile(source, "h.py", "exec"), module)  # noqa: S102 - a program this genome renders, read not run
    child_source = module["child_source"]
    assert callable(child_source)
    child = child_source(level)
    assert isinstance(child, str)
    return child


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


def test_templates_refuse_values_that_do_not_match_their_slots() -> None:
    assert fill("{a} and {b!r}", a=1, b="x") == "1 and 'x'"
    with pytest.raises(AssertionError, match=r"slots \['a', 'b'\] do not match the values \['a'\]"):
        fill("{a} and {b}", a=1)  # a slot the code no longer fills
    with pytest.raises(AssertionError, match="do not match"):
        fill("{a}", a=1, b=2)  # a value the template no longer has a place for
    assert fill_percent("%(level)d%% %(h1)s", level=3, h1="x") == "3% x"
    with pytest.raises(AssertionError, match="do not match"):
        fill_percent("%(level)d", level=3, kernel="k")
    with pytest.raises(AssertionError, match="do not match"):
        fill(H1_TEMPLATE, **dict.fromkeys(("topk", "max_iterations", "chunk", "settle", "decision",
                                           "command", "policy"), ""))  # `look` left out


def test_the_task_level_looks_by_its_fixation_policy_only_when_it_has_one() -> None:
    plain = TowerGenome()
    table = (ExperienceEntry("$", "idle", "0 c 0"), ExperienceEntry("$ echo", "typed", "-1 c-1 2", 2.0))
    looking = plain.replace(experience={**plain.experience, "fixation": table})
    assert "FIXATION" not in render(plain, 1)
    assert '{"decision": DECISION, "command": COMMAND}, SESSION' in render(plain, 1)
    source = render(looking, 1)
    assert '{"decision": DECISION, "command": COMMAND, "fixation": FIXATION}, SESSION' in source
    module: dict[str, object] = {"__name__": "rendered"}
    exec(compile(source, "h1.py", "exec"), module)  # noqa: S102 - a program this genome renders, read not run
    policy = module["FIXATION"]
    assert isinstance(policy, ft.Experience)
    assert policy.rows == [(e.query, e.key, e.value, e.weight) for e in table]


@pytest.mark.parametrize("mode", ["line", "statement"])
def test_the_offline_writer_asks_for_every_line_of_the_child_then_its_end(mode: str) -> None:
    for seed in SEEDS:
        child = render(load_genome(str(seed)), 2)
        pairs = writer_contexts(child, "h2.py", mode, 2)
        assert [line for _, line in pairs] == [*child.splitlines(), ft.END_MARK]
        assert len({context for context, _ in pairs}) > len(pairs) // 2  # the screen moves on as lines are typed


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
    ({"task_command": "ls"}, "task_command is gone: a tower's tasks come from a task suite"),
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
