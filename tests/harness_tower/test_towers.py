"""Whole towers in real sandboxes, scored from their git trajectories."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness_tower.evaluate import evaluate, run_tower
from harness_tower.genome import TowerGenome, load_genome
from tests.harness_tower.conftest import git, one_task
from tests.harness_tower.test_render import SEEDS

pytestmark = [pytest.mark.tmux, pytest.mark.slow]
SEED_DIR = SEEDS[0].parent


def test_depth3_kernel_tower_is_correct_and_converges(out_dir: Path) -> None:
    result = evaluate(load_genome(str(SEED_DIR / "kernel_line.json")), depth=3, out_dir=out_dir, tasks=one_task())
    assert result.status == "ok", result.error
    m = result.metrics
    assert m["task_correct"] == 1
    assert m["bytes_convergence"] is not None and m["bytes_convergence"] < 0.05
    assert m["keys_audit"] == 0 and m["self_read"] == 0
    assert m["commits@h3"] > 100 and m["commits@h2"] > 30 and m["commits@h1"] >= 2
    # the typed files are byte-identical to what the genome renders
    from harness_tower.render import render
    genome = load_genome(str(SEED_DIR / "kernel_line.json"))
    for n in (1, 2, 3):
        assert (out_dir / "tmux_outputs" / f"h{n}.py").read_text() == render(genome, n)
    assert json.loads(git(out_dir / "tmux_outputs", "show", "HEAD:.tower/result.json"))["status"] == "ok"


def test_literal_tower_bytes_grow_level_over_level(out_dir: Path) -> None:
    result = evaluate(load_genome(str(SEED_DIR / "literal_line.json")), depth=3, out_dir=out_dir, tasks=one_task())
    assert result.status == "ok", result.error
    m = result.metrics
    assert m["task_correct"] == 1
    assert m["code_bytes@h1"] < m["code_bytes@h2"] < m["code_bytes@h3"]
    assert m["bytes_ratio@h2"] > 1.15  # each level holds its child inline: h3 is h2 plus its own driver


def test_typing_modes_trade_diff_size_against_syntax_validity(short_tmp: Path) -> None:
    m = {}
    for mode in ("line", "statement"):
        r = evaluate(TowerGenome(content_source="literal", typing_mode=mode), depth=2, out_dir=short_tmp / mode)
        assert r.status == "ok", r.error
        m[mode] = r.metrics
    assert m["statement"]["syntax_ratio@h2"] > m["line"]["syntax_ratio@h2"]
    assert m["line"]["max_diff_len@h2"] < m["statement"]["max_diff_len@h2"]


def test_an_impasse_ends_its_task_not_the_tower(out_dir: Path) -> None:
    # h1 finds no experience for what it sees: that task is left undone, the next one starts
    from harness_tower.genome import ExperienceEntry
    genome = TowerGenome()
    broken = genome.replace(experience={"decision": (ExperienceEntry("zzz", "never seen", "text:x"),),
                                        "command": genome.experience["command"]})
    result = evaluate(broken, depth=2, out_dir=out_dir, timeout=60, tasks=one_task("hi") * 2)
    assert result.status == "ok", result.error
    assert [(t.passed, t.typed) for t in result.tasks] == [(False, ""), (False, "")]
    assert result.metrics["task_pass_rate"] == 0


def test_a_hanging_tower_times_out_and_is_marked(out_dir: Path) -> None:
    manifest = {"depth": 1, "task": {"command": "x", "expected": "y"}, "prompt": "$ "}
    result = run_tower("import time\ntime.sleep(600)\n", depth=1, manifest=manifest, out_dir=out_dir, timeout=2)
    assert result.status == "timeout" and "2s" in (result.error or "")
    assert json.loads(git(out_dir / "tmux_outputs", "show", "HEAD:.tower/result.json"))["status"] == "timeout"


def test_evolve_eval_cli(short_tmp: Path) -> None:
    run = [sys.executable, "-m", "evolve.cli", "eval"]
    ok = subprocess.run([*run, str(SEED_DIR / "kernel_line.json"), "--depth", "2", "--out", str(short_tmp / "a"),
                         "--task", "print-hello-world", "--json"], capture_output=True, text=True, timeout=120,
                        check=False)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout, parse_constant=lambda token: pytest.fail(f"not JSON: {token}"))  # strict
    assert data["status"] == "ok" and data["metrics"]["task_correct"] == 1
    assert [t["task_id"] for t in data["tasks"]] == ["print-hello-world"] and data["tasks"][0]["passed"]
    table = subprocess.run([*run, str(SEED_DIR / "kernel_line.json"), "--depth", "2", "--out",
                            str(short_tmp / "b")], capture_output=True, text=True, timeout=120, check=False)
    assert table.returncode == 0 and "syntax_ratio" in table.stdout and "h2" in table.stdout
    bad = short_tmp / "bad.json"
    bad.write_text('{"chunk": 99}')
    for argv, msg in [([str(bad), "--out", str(short_tmp / "c")], "chunk must be an integer in 1..16"),
                      (["missing.json", "--out", str(short_tmp / "d")], "no such genome file"),
                      ([str(SEED_DIR / "kernel_line.json"), "--out", str(short_tmp / "a")], "not an empty directory"),
                      ([str(SEED_DIR / "kernel_line.json"), "--depth", "0", "--out", str(short_tmp / "e")], "--depth")]:
        r = subprocess.run([*run, *argv], capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
