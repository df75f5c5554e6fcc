"""A tower's task level working through a task sample: each task set up, its terminal opened
afresh with the instruction, checked when the level says it is done (never told), stored."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness_tower.evaluate import run_tower
from harness_tower.tasks import Task, load_suite, parse_suite
from tests.harness_tower.conftest import git

pytestmark = pytest.mark.tmux

# A task level that types each task's given lines, waiting for the prompt after each Enter.
TYPIST = '''import json
from harness_tower import ft
S = "h1_writer"
t = ft.Terminal()
t.open(S)
LINES = json.loads({lines!r})
while True:
    task = t.task()
    if task is None:
        break
    for line in LINES[task["index"]]:
        for i in range(0, len(line), 16):
            t.send(S, line[i:i + 16], "text")
        t.send(S, "Enter", "ctrl")
        while not t.capture(S)["capture"].rstrip().endswith("$"):
            t.wait_output(S, 1.0)
    t.task_done()
'''


def typist(lines: list[list[str]]) -> str:
    return TYPIST.format(lines=json.dumps(lines))


def manifest() -> dict[str, object]:
    return {"run_id": "t", "individual_id": "t", "depth": 1, "prompt": "$ ", "platform_version": "0.1.0"}


def test_reference_solutions_pass_and_wrong_answers_fail(short_tmp: Path) -> None:
    tasks = load_suite("shell").sample("train", 4, "sample-test")
    lines = [list(t.solution) if i % 2 == 0 else ["echo wrong"] for i, t in enumerate(tasks)]
    result = run_tower(typist(lines), depth=1, manifest=manifest(), out_dir=short_tmp / "e", timeout=90,
                       tasks=tasks)
    assert result.status == "ok", result.error
    assert [r.passed for r in result.tasks] == [True, False, True, False]
    assert [r.task_id for r in result.tasks] == [t.id for t in tasks]
    assert result.metrics["task_pass_rate"] == 0.5 and result.metrics["tasks_sampled"] == 4
    assert result.metrics["untyped_chars"] == 0 and result.metrics["tamper"] == 0
    assert result.tasks[1].typed == "echo wrong\n" and result.tasks[1].reason.startswith("check.")
    stored = json.loads((result.trajectory / ".tower" / "result.json").read_text())  # type: ignore[operator]
    assert [t["passed"] for t in stored["tasks"]] == [True, False, True, False]
    init = git(result.trajectory, "rev-list", "--max-parents=0", "HEAD").strip()  # type: ignore[arg-type]
    shown = json.loads(git(result.trajectory, "show", f"{init}:.tower/manifest.json"))  # type: ignore[arg-type]
    assert [t["id"] for t in shown["tasks"]] == [t.id for t in tasks]
    assert "check" not in json.dumps(shown["tasks"])  # the checks stay with the evaluator
    # every task's terminal showed its instruction above its first prompt
    captures = git(result.trajectory, "log", "-p", "--format=", "--", ".captures/h1_writer")  # type: ignore[arg-type]
    assert all(f"+# task: {t.instruction}" in captures for t in tasks)


def test_unfinished_and_unreached_tasks_fail_with_their_reason(short_tmp: Path) -> None:
    tasks = load_suite("shell").sample("train", 3, "sample-test-2")
    source = ("from harness_tower import ft\nt = ft.Terminal()\nt.open('h1_writer')\n"
              "t.task()\nt.send('h1_writer', 'echo half', 'text')\n")  # types, never submits, exits
    result = run_tower(source, depth=1, manifest=manifest(), out_dir=short_tmp / "e", timeout=60, tasks=tasks)
    assert result.status == "ok", result.error
    assert [r.passed for r in result.tasks] == [False, False, False]
    assert result.tasks[0].typed == "echo half" and result.tasks[1].reason == "not attempted"
    assert result.metrics["task_pass_rate"] == 0.0


def test_a_task_whose_set_up_fails_is_a_failed_task_not_a_failed_tower(short_tmp: Path) -> None:
    suite = parse_suite("""\
name: s
version: 1
tasks:
- id: broken
  instruction: Print hi.
  split: train
  tier: 1
  setup: {commands: ["exit 3"]}
  check: {output: [hi]}
  solution: [echo hi]
- id: fine
  instruction: Print hi.
  split: train
  tier: 1
  check: {output: [hi]}
  solution: [echo hi]
""", "s.yaml")
    tasks: list[Task] = list(suite.tasks)
    result = run_tower(typist([["echo hi"], ["echo hi"]]), depth=1, manifest=manifest(), out_dir=short_tmp / "e",
                       timeout=60, tasks=tasks)
    assert result.status == "ok", result.error
    broken, fine = result.tasks
    assert not broken.passed and broken.reason == "set-up failed: setup.commands: exit status 3"
    assert fine.passed and result.metrics["task_pass_rate"] == 0.5


def test_only_the_task_level_may_ask_for_tasks(short_tmp: Path) -> None:
    tasks = load_suite("shell").sample("train", 1, "x")
    source = ("from harness_tower import ft\nt = ft.Terminal()\nt.open('h2_writer')\n"
              "try:\n    t.task()\nexcept ft.TowerError as e:\n    print(e)\n")
    result = run_tower(source, depth=2, manifest=dict(manifest(), depth=2), out_dir=short_tmp / "e", timeout=30,
                       tasks=tasks)
    assert result.status == "invalid" and "session binding" in (result.error or "")
    assert result.tasks[0].reason == "not attempted"
