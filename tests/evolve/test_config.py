"""Run configs: every mistake is one line naming the file, the field and the fix."""
from __future__ import annotations

from pathlib import Path

import pytest

from evolve.cli import main
from evolve.config import load_config, resolve
from evolve.errors import EvolveError
from tests.evolve.conftest import REPO, write_config

BASE = {"name": "t", "seed": 1, "generations": 2,
        "species": {"name": "numeric", "params": {"problem": "zdt1"}},
        "population": {"size": 4}}


def _error(tmp_path: Path, data: dict[str, object]) -> str:
    path = write_config(tmp_path / "x.yaml", data)
    with pytest.raises(EvolveError) as info:
        resolve(load_config(path), where=str(path))
    return str(info.value).replace(str(tmp_path) + "/", "")


@pytest.mark.parametrize("name", ["quickstart", "zdt1", "tower_depth3", "both_species"])
def test_shipped_configs_are_valid(name: str) -> None:
    path = REPO / "configs" / f"{name}.yaml"
    r = resolve(load_config(path), where=str(path))
    assert r.parts and all(p.ref_point is not None and len(p.objectives) >= 2 for p in r.parts)
    for part in r.parts:  # every tower run holds the SPEC's constraints
        if part.name == "tower":
            assert {"keys_audit", "self_read", "untyped_chars", "tamper"} <= {c.metric for c in part.constraints}


TOWER = {**BASE, "species": {"name": "tower", "params": {"depth": 2}}}


def test_tower_constraints_and_metrics_by_default(tmp_path: Path) -> None:
    (part,) = resolve(load_config(write_config(tmp_path / "t.yaml", TOWER))).parts
    assert [(c.metric, c.eq) for c in part.constraints] == [("keys_audit", 0), ("self_read", 0), ("untyped_chars", 0),
                                                          ("tamper", 0)]
    data = {**TOWER, "objectives": [{"metric": "idle_keys@h2"}, {"metric": "syntax_ratio@h2"}],
            "constraints": [{"metric": "tamper", "eq": 0}, {"metric": "untyped_chars", "le": 0}]}
    (part,) = resolve(load_config(write_config(tmp_path / "t.yaml", data))).parts
    assert [o.direction for o in part.objectives] == ["min", "max"]
    assert _error(tmp_path, {**data, "constraints": [{"metric": "tamper@h2", "eq": 0}]}) == (
        "x.yaml: constraints[0].metric: tamper is one number per tower; drop '@h2'")
    assert _error(tmp_path, {**data, "objectives": [{"metric": "idle_keys"}]}).startswith(
        "x.yaml: objectives[0].metric: idle_keys is reported per level; name one, e.g. idle_keys@h2")


def test_the_experts_section_reaches_the_tower_species(tmp_path: Path) -> None:
    from harness_tower.backends.relay import ExpertEndpoints

    experts = {"openai": {"base_url": "http://127.0.0.1:8000/v1", "model": "tiny", "retries": 1},
               "accordion": {"checkpoint": "/models/ck.pt"}}
    cfg = load_config(write_config(tmp_path / "t.yaml", {**TOWER, "experts": experts}))
    species = resolve(cfg).parts[0].species
    assert species.experts == {"openai": {"base_url": "http://127.0.0.1:8000/v1", "model": "tiny", "retries": 1,
                                          "timeout": 30.0, "concurrency": 2},
                               "accordion": {"checkpoint": "/models/ck.pt"}}
    assert cfg.to_json_data()["experts"]["openai"]["base_url"] == "http://127.0.0.1:8000/v1"  # stored with the run
    ep = ExpertEndpoints.from_config(species.experts, environ={"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"})
    assert ep == ExpertEndpoints("http://127.0.0.1:8000/v1", "tiny", "/models/ck.pt", openai_retries=1)
    # no section: the species leaves it all to the evaluating process's environment
    assert resolve(load_config(write_config(tmp_path / "t.yaml", TOWER))).parts[0].species.experts is None
    only_openai = {**TOWER, "experts": {"openai": {}}}
    partial = resolve(load_config(write_config(tmp_path / "t.yaml", only_openai))).parts[0].species
    ep = ExpertEndpoints.from_config(partial.experts, environ={"OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
                                                               "TOWER_EXPERT_MODEL": "m"})
    assert (ep.openai_base_url, ep.openai_model, ep.accordion_checkpoint) == ("http://127.0.0.1:1/v1", "m", None)


@pytest.mark.parametrize("experts, message", [
    ({"openai": {"base_url": "ftp://127.0.0.1/v1"}},
     "experts.openai.base_url: must be an http(s) URL such as http://127.0.0.1:8000/v1 (got 'ftp://127.0.0.1/v1')"),
    ({"openai": {"api_key": "sk-secret"}},
     ("experts.openai: api_key is refused: the key is read from OPENAI_API_KEY where the evaluation runs, never from "
     "a config")),
    ({"openai": {"url": "http://x"}},
     "experts.openai.url: unknown field (known: base_url, model, timeout, retries, concurrency)"),
    ({"openai": {"retries": 11}}, "experts.openai.retries: must be <= 10 (got 11)"),
    ({"accordion": {"checkpoint": ""}}, "experts.accordion.checkpoint: string should have at least 1 character"),
    ({"vllm": {}}, "experts.vllm: unknown field (known: openai, accordion)"),
    ("http://127.0.0.1/v1", "experts: must be a mapping of fields (got str)"),
])
def test_experts_section_mistakes_are_one_line(tmp_path: Path, experts: object, message: str) -> None:
    msg = _error(tmp_path, {**TOWER, "experts": experts})
    assert msg == f"x.yaml: {message}"
    assert "sk-secret" not in msg


def test_bounds_name_field_limit_and_value(tmp_path: Path) -> None:
    assert _error(tmp_path, {**BASE, "population": {"size": 0}}) == "x.yaml: population.size: must be >= 2 (got 0)"


def test_unknown_fields_list_the_known_ones(tmp_path: Path) -> None:
    msg = _error(tmp_path, {**BASE, "population": {"size": 4, "sise": 3}})
    assert msg == "x.yaml: population.sise: unknown field (known: size, offspring)"


def test_missing_and_mistyped_fields(tmp_path: Path) -> None:
    data = dict(BASE)
    del data["generations"]
    assert _error(tmp_path, data) == "x.yaml: generations: is required"
    assert _error(tmp_path, {**BASE, "generations": "many"}) == "x.yaml: generations: must be an integer (got 'many')"
    msg = _error(tmp_path, {**BASE, "algorithm": {"name": "nsga9"}})
    assert msg == "x.yaml: algorithm.name: must be one of 'nsga2' or 'nsga3' (got 'nsga9')"


def test_objectives_are_checked_against_the_species(tmp_path: Path) -> None:
    msg = _error(tmp_path, {**BASE, "objectives": [{"metric": "f1"}, {"metric": "f9"}]})
    assert msg.startswith("x.yaml: objectives[1].metric: unknown metric 'f9' for species numeric")
    tower = {**BASE, "species": {"name": "tower", "params": {"depth": 2}}}
    msg = _error(tmp_path, {**tower, "objectives": [{"metric": "bytes_convergence"}]})
    assert msg == ("x.yaml: objectives[0].metric: bytes_convergence is defined only for depth >= 3 "
                   "(species.params.depth is 2)")
    msg = _error(tmp_path, {**tower, "objectives": [{"metric": "code_bytes@h2"}]})
    assert msg.startswith("x.yaml: objectives[0].direction: code_bytes@h2 has no natural direction")
    msg = _error(tmp_path, {**tower, "constraints": [{"metric": "keys_audit"}]})
    assert msg == "x.yaml: constraints[0]: give at least one bound: le, ge or eq"


def test_species_errors_name_the_species_field(tmp_path: Path) -> None:
    assert _error(tmp_path, {**BASE, "species": {"name": "fish"}}).startswith("x.yaml: species.name: unknown species")
    msg = _error(tmp_path, {**BASE, "species": {"name": "numeric", "params": {"problem": "nope"}}})
    assert msg.startswith("x.yaml: species.params: numeric: cannot build problem 'nope'")


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(EvolveError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(EvolveError, match=r"bad.yaml: not valid YAML at line \d+, column \d+"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(EvolveError, match="expected a mapping of fields at the top level"):
        load_config(bad)


def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path / "x.yaml", {**BASE, "population": {"size": 0}})
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err == f"evolve: error: {path}: population.size: must be >= 2 (got 0)\n"
    assert not (tmp_path / "runs").exists()
