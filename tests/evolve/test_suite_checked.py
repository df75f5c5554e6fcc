"""A run's task suite is verified before anything is created: a task whose reference solution
fails its own check is one line and no run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness_tower.checks import verify_once
from harness_tower.tasks import parse_suite
from tests.evolve.conftest import REPO

pytestmark = [pytest.mark.tmux]

GOOD = """
name: good
version: 1
tasks:
- {id: hello, instruction: "Print the words hello world.", split: train, tier: 1,
   check: {output: [hello world]}, solution: [echo hello world]}
"""
BAD = GOOD.replace("name: good", "name: bad") + """\
- {id: wrong, instruction: "Print the number 7.", split: train, tier: 1,
   check: {output: ["7"]}, solution: [echo 8]}
"""


def test_a_run_on_a_suite_with_a_failing_solution_is_one_line_and_no_run(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD, encoding="utf-8")
    (tmp_path / "run.yaml").write_text(f"""
name: bad-suite
generations: 1
species: {{name: tower, params: {{depth: 2, tasks: 1, suite: {tmp_path / 'bad.yaml'}}}}}
population: {{size: 2}}
objectives: [{{metric: task_pass_rate, direction: max, ref: 0.0}}]
""", encoding="utf-8")
    env = dict(os.environ, TOWER_SUITE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(tmp_path / "run.yaml"), "--out",
                           str(tmp_path / "runs")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "task 'wrong'" in lines[0] and "fails its own check" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_clean_verification_is_remembered_and_a_problem_never(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWER_SUITE_CACHE", str(tmp_path / "cache"))
    good, bad = parse_suite(GOOD, "good.yaml"), parse_suite(BAD, "bad.yaml")
    assert verify_once(good) == [] and len(list((tmp_path / "cache").glob("good-*.ok"))) == 1
    assert verify_once(good) == []  # remembered
    problems = verify_once(bad)
    assert len(problems) == 1 and "wrong" in problems[0]
    assert not list((tmp_path / "cache").glob("bad-*"))
    changed = parse_suite(GOOD.replace("tier: 1,", "tier: 1, tags: [echo],"), "good.yaml")
    assert changed != good and verify_once(changed) == []  # other content: verified again, marked apart
    assert len(list((tmp_path / "cache").glob("good-*.ok"))) == 2
