"""Task suites: the format's one-line errors, the built-in suite, and tasks run for real.

The terminal tests type into a real sandbox (tmux, bash, bwrap where it works) through a
trusted recorder client, as H1 types: one sandbox per module, a fresh task terminal per task.
"""
from __future__ import annotations

import doctest
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness_tower.checks
import harness_tower.tasks
from harness_tower import ft
from harness_tower.checks import (
    SESSION,
    WRONG,
    Verdict,
    attempt,
    check,
    judge_output,
    prepare,
    segment_screens,
    session_seq,
    type_lines,
    verify_suite,
)
from harness_tower.sandbox import Sandbox
from harness_tower.tasks import SPLITS, TIERS, SuiteError, Task, load_suite, parse_suite
from validators.trajectory import Trajectory

BASE = """\
name: s
version: 1
tasks:
- id: a
  instruction: Print hi.
  split: train
  tier: 1
  check: {output: [hi]}
  solution: [echo hi]
"""
SECOND = BASE.split("tasks:\n")[1]


def test_the_module_examples_hold() -> None:
    for module in (harness_tower.tasks, harness_tower.checks):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize(("text", "error"), [
    (BASE + "  colour: red\n", "task 'a': colour: unknown field"),
    (BASE.replace("instruction:", "instructions:"), "task 'a': instructions: unknown field"),
    (BASE + SECOND, "task 'a' (#2): id: duplicate of task #1"),
    (BASE.replace("{output: [hi]}", "{}"), "task 'a': check: needs exactly one of 'output' or 'verify' (has neither)"),
    (BASE.replace("{output: [hi]}", "{output: [hi], verify: 'true'}"),
     "task 'a': check: needs exactly one of 'output' or 'verify' (has both)"),
    (BASE.replace("split: train", "split: dev"),
     "task 'a': split: 'dev' is not one of 'train', 'validation' or 'test'"),
    (BASE.replace("tier: 1", "tier: 6"), "task 'a': tier: Input should be less than or equal to 5 (got 6)"),
    (BASE.replace("tier: 1", "tier: 0"), "task 'a': tier: Input should be greater than or equal to 1 (got 0)"),
    (BASE.replace("tier: 1", "tier: '1'"), "task 'a': tier: Input should be a valid integer (got '1')"),
    (BASE.replace("id: a", "id: 12"), "task #1: id: Input should be a valid string (got 12 - quote it)"),
    (BASE.replace("id: a", "id: A b"), "task 'A b': id: 'A b' is not lower-case letters, digits and '-' (at most 48)"),
    (BASE.replace("- id: a\n  instruction", "- instruction"), "task #1: id: missing"),
    (BASE.replace("  solution: [echo hi]\n", ""), "task 'a': solution: missing"),
    (BASE.replace("solution: [echo hi]", "solution: []"), "task 'a': solution: needs at least 1"),
    (BASE.replace("{output: [hi]}", "{output: [42]}"),
     "task 'a': check.output.0: Input should be a valid string (got 42 - quote it)"),
    (BASE.replace("{output: [hi]}", "{output: hi}"),
     "task 'a': check.output: Input should be a valid tuple (got 'hi')"),
    (BASE.replace("{output: [hi]}", "{output: ['$ hi']}"),
     "task 'a': check.output: line '$ hi' starts with the prompt '$ '"),
    (BASE.replace("{output: [hi]}", "{output: ['', hi]}"),
     "task 'a': check.output: needs at least one line, and no blank first or last line"),
    (BASE.replace("{output: [hi]}", "{output: [echo hi]}"),
     "task 'a': check.output: line 'echo hi' is also a line of the solution"),
    (BASE.replace("{output: [hi]}", "{verify: '  '}"), "task 'a': check.verify: is empty"),
    (BASE.replace("Print hi.", "Type echo hi please."), "task 'a': instruction: gives away the command 'echo hi'"),
    (BASE.replace("Print hi.", "''"), "task 'a': instruction: must be one non-empty line of at most 300 characters"),
    (BASE.replace("tier: 1", "tier: 5"),
     "task 'a': solution: a tier-5 task types a failing first attempt, then the fix (2+ lines)"),
    (BASE.replace("[echo hi]", '["echo\\thi"]'),
     "task 'a': solution: line 'echo\\thi' holds a control character (a tab?); it cannot be typed"),
    (BASE + "  setup: {files: {../x: hi}}\n", "task 'a': setup.files: '../x' is not a plain relative file name"),
    (BASE + "  setup: {file: {x: hi}}\n", "task 'a': setup.file: unknown field"),
    (BASE + "  setup: {files: {f: x, f/g: y}}\n", "task 'a': setup.files: 'f' is both a file and a folder"),
    (BASE + "  tier: 2\n", "line 10: not valid YAML: duplicate key 'tier'"),
    (BASE + "  - : [\n", "line 10: not valid YAML: expected <block end>, but found '-'"),
    ("- a\n", "a suite is a mapping with name, version and tasks"),
    ("name: s\nversion: 1\n", "tasks: missing"),
    ("name: s\nversion: 1\ntasks: [hello]\n", "task #1: must be a mapping of fields"),
    ("name: s\nversion: 1\ntasks: []\n", "tasks: needs at least 1"),
    (BASE.replace("version: 1", "version: 1\nauthor: me"), "author: unknown field"),
    (BASE.replace("version: 1", "version: x"), "version: Input should be a valid integer (got 'x')"),
])
def test_a_malformed_suite_is_one_line_naming_the_task_and_the_field(text: str, error: str) -> None:
    with pytest.raises(SuiteError) as caught:
        parse_suite(text, "s.yaml")
    assert str(caught.value) == f"s.yaml: {error}"


def test_a_well_formed_suite_keeps_its_fields() -> None:
    text = BASE + """\
- id: b
  instruction: Add a line to notes.
  split: test
  tier: 2
  tags: [append]
  setup:
    files: {notes/today.txt: "one\\n"}
    commands: [touch extra]
  check: {verify: grep -qx two notes/today.txt}
  solution: [echo two >> notes/today.txt]
"""
    suite = parse_suite(text, "s.yaml")
    task = suite.task("b")
    assert (task.split, task.tier, task.tags) == ("test", 2, ("append",))
    assert task.setup.files == {"notes/today.txt": "one\n"} and task.setup.commands == ("touch extra",)
    assert task.check.verify == "grep -qx two notes/today.txt" and task.check.output is None
    assert [t.id for t in suite.split("train")] == ["a"] and suite.split("validation") == ()
    with pytest.raises(SuiteError, match="no task 'c'"):
        suite.task("c")


def test_the_built_in_suite_covers_every_tier_in_every_split() -> None:
    suite = load_suite("shell")
    assert len(suite.tasks) >= 40
    for split in SPLITS:
        assert {task.tier for task in suite.split(split)} == set(TIERS), split
    assert len(suite.split("train")) > max(len(suite.split("validation")), len(suite.split("test")))
    # Nothing that needs the network, the clock or chance: a task's answer never changes.
    unsteady = re.compile(r"\b(curl|wget|pip|apt|git|ssh|ping|date|RANDOM|shuf|mktemp|sleep)\b|https?:")
    for task in suite.tasks:
        for text in (*task.solution, *task.setup.commands, task.check.verify or ""):
            assert not unsteady.search(text), (task.id, text)


def test_a_suite_loads_from_a_file_and_an_unknown_one_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(BASE)
    assert load_suite(path).task("a").instruction == "Print hi."
    with pytest.raises(SuiteError) as caught:
        load_suite(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: no such suite file or built-in suite (built-in: shell)"


def test_sampling_is_fixed_by_the_seed_and_stays_in_its_split() -> None:
    suite = load_suite("shell")
    draw = suite.sample("train", 4, "7:0")
    assert len({task.id for task in draw}) == 4 and all(task.split == "train" for task in draw)
    assert suite.sample("train", 4, "7:0") == draw
    assert len({tuple(t.id for t in suite.sample("train", 4, f"7:{g}")) for g in range(5)}) > 1
    # The same draw in another process, whatever its string hashing.
    code = ("from harness_tower.tasks import load_suite; "
            "print(' '.join(t.id for t in load_suite('shell').sample('train', 4, '7:0')))")
    env = dict(os.environ, PYTHONHASHSEED="123")
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert other.stdout.split() == [task.id for task in draw]
    assert {t.id for t in suite.sample("test", len(suite.split("test")), 1)} == {t.id for t in suite.split("test")}
    with pytest.raises(SuiteError, match=r"cannot draw 21 tasks from split 'test' \(20 tasks\)"):
        suite.sample("test", 21, 1)
    with pytest.raises(SuiteError, match="no split 'dev'"):
        suite.sample("dev", 1, 1)


def test_the_command_line_summarises_a_suite_and_refuses_a_bad_one(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "harness_tower.tasks", "shell"],
                        check=False, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0].startswith("suite shell v1: ")
    assert [line.split(":")[0].strip() for line in lines[1:]] == list(SPLITS)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("split: train", "split: dev"))
    run = subprocess.run([sys.executable, "-m", "harness_tower.tasks", str(bad)],
                         check=False, capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == f"error: {bad}: task 'a': split: 'dev' is not one of 'train', 'validation' or 'test'\n"


# --------------------------------------------------------------------------------------
# In a real terminal
# --------------------------------------------------------------------------------------
def _sandbox_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="he-", dir="/tmp"))
    path.chmod(0o755)  # the sandbox user must reach what lies below
    return path


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Sandbox, ft.Terminal]]:
    """One sandbox for the module's terminal tests: a task terminal opened per task."""
    root = _sandbox_dir()
    try:
        with Sandbox(root / "eval", isolation="auto") as box:
            assert box.recorder is not None
            box.recorder.init_commit({"purpose": "test_tasks"})
            yield box, ft.Terminal(box.connect(SESSION))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _task(**fields: object) -> Task:
    return Task.model_validate({"id": "t", "instruction": "Do it.", "split": "train", "tier": 1, **fields})


@pytest.mark.tmux
def test_one_task_per_tier_passes_with_its_solution_and_fails_with_a_wrong_command(
        world: tuple[Sandbox, ft.Terminal]) -> None:
    box, term = world
    suite = load_suite("shell")
    for tier in TIERS:
        task = next(task for task in suite.tasks if task.tier == tier)
        assert attempt(box, term, task, task.solution, f"{task.id}.ok").passed, task.id
        wrong = attempt(box, term, task, [WRONG], f"{task.id}.no")
        assert not wrong.passed and wrong.reason.startswith("check."), (task.id, wrong)


@pytest.mark.tmux
def test_prepare_opens_the_terminal_in_the_task_directory_below_the_instruction(
        world: tuple[Sandbox, ft.Terminal]) -> None:
    box, term = world
    task = _task(id="where", instruction="Tell me where you are.", check={"output": ["x"]}, solution=["pwd"],
                 setup={"files": {"sub/data.txt": "one\n"}, "commands": ["echo two >> sub/data.txt"]})
    prepared = prepare(box, task)
    assert prepared.opening.splitlines()[:2] == ["# task: Tell me where you are.", "$"]
    assert box.live not in prepared.directory.parents  # never counted as the tower's code
    data = prepared.directory / "sub" / "data.txt"
    assert data.read_text() == "one\ntwo\n" and data.stat().st_uid == box.uid  # H1 may change it
    screens = type_lines(term, ["pwd"])
    assert str(prepared.directory) in screens[-1][1].splitlines()


@pytest.mark.tmux
def test_expected_output_counts_only_when_a_submitted_command_printed_it(world: tuple[Sandbox, ft.Terminal]) -> None:
    box, term = world
    task = load_suite("shell").task("print-hello-world")
    typed = prepare(box, task, "typed")
    term.send(SESSION, "hello world", "text")  # on the screen, never submitted
    unsent = check(box, typed, [("text", term.capture(SESSION)["capture"], "hello world")])
    assert unsent == Verdict(False, "check.output: 'hello world' was not printed by a submitted command")
    assert not attempt(box, term, task, ["hello world"], "as-command").passed  # bash: hello: command not found
    assert attempt(box, term, task, ["printf 'hello world\\n'"], "other-way").passed  # any command that prints it


@pytest.mark.tmux
def test_the_instruction_shown_is_never_taken_for_output(world: tuple[Sandbox, ft.Terminal]) -> None:
    box, term = world
    task = _task(id="banner", instruction="Print hi.", check={"output": ["# task: Print hi."]},
                 solution=["echo '# task: Print hi.'"])
    assert not attempt(box, term, task, [""], "enter-only").passed  # an Enter first redraws nothing new
    assert attempt(box, term, task, task.solution, "printed").passed


@pytest.mark.tmux
def test_a_failed_set_up_is_that_task_failing_with_the_reason(world: tuple[Sandbox, ft.Terminal]) -> None:
    box, term = world
    task = _task(id="broken", setup={"commands": ["true", "echo boom >&2; exit 3", "touch never"]},
                 check={"output": ["x"]}, solution=["echo x"])
    assert attempt(box, term, task, task.solution) == Verdict(
        False, "set-up failed: setup.commands: exit status 3: boom")
    assert not (box.tasks / "broken" / "never").exists()


@pytest.mark.tmux
def test_a_verifier_sees_the_task_directory_and_the_final_screen(world: tuple[Sandbox, ft.Terminal]) -> None:
    box, term = world
    on_screen = _task(id="screen", check={"verify": "grep -qx 'magic words'"}, solution=["echo magic words"])
    assert attempt(box, term, on_screen, on_screen.solution).passed
    assert not attempt(box, term, on_screen, ["echo other words"], "screen.no").passed
    in_dir = _task(id="dir", check={"verify": "test -f made.txt || { echo no made.txt; exit 4; }"},
                   solution=["touch made.txt"])
    assert attempt(box, term, in_dir, in_dir.solution).passed
    assert attempt(box, term, in_dir, ["touch other.txt"], "dir.no") == Verdict(
        False, "check.verify: exit status 4: no made.txt")


@pytest.mark.tmux
def test_verifying_a_suite_names_each_broken_task_in_one_line(world: tuple[Sandbox, ft.Terminal]) -> None:
    box, term = world
    suite = parse_suite("""\
name: broken
version: 1
tasks:
- {id: fine, instruction: Say hi., split: train, tier: 1, check: {output: [hi]}, solution: [echo hi]}
- {id: wrong-answer, instruction: Say hi., split: train, tier: 1, check: {output: [ho]}, solution: [echo hi]}
- {id: always, instruction: Do anything., split: train, tier: 2, check: {verify: 'true'}, solution: [touch x]}
- id: no-recovery
  instruction: Save ok into out/x.
  split: train
  tier: 5
  setup: {commands: [mkdir out]}
  check: {verify: grep -qx ok out/x}
  solution: [echo ok > out/x, cat out/x]
- {id: bad-setup, instruction: Say hi., split: test, tier: 1, setup: {commands: [exit 9]},
   check: {output: [hi]}, solution: [echo hi]}
""", "broken.yaml")
    assert verify_suite(box, term, suite) == [
        "task 'wrong-answer': solution: fails its own check "
        "(check.output: 'ho' was not printed by a submitted command)",
        "task 'always': check: passes after a wrong command ('echo wrong')",
        "task 'no-recovery': solution: its first attempt alone already passes the check",
        "task 'bad-setup': setup.commands: exit status 9",
    ]


@pytest.mark.tmux
def test_a_segment_read_back_from_the_trajectory_is_judged_the_same() -> None:
    root = _sandbox_dir()
    try:
        with Sandbox(root / "eval", isolation="auto") as box:
            assert box.recorder is not None
            box.recorder.init_commit({"purpose": "segments"})
            term = ft.Terminal(box.connect(SESSION))
            right = _task(id="right", check={"output": ["hi", "there"]}, solution=["echo hi; echo there"])
            wrong = _task(id="wrong", check={"output": ["hi", "there"]}, solution=["echo there; echo hi"])
            runs = []
            for task in (right, wrong):
                prepared = prepare(box, task)
                live = type_lines(term, task.solution)
                runs.append((prepared, live, check(box, prepared, live), session_seq(box)))
            box.finish({"status": "ok"})
            assert [verdict.passed for _, _, verdict, _ in runs] == [True, False]
            with Trajectory.open(box.work) as traj:
                for prepared, live, verdict, end in runs:
                    stored = segment_screens(traj, prepared, end)
                    assert [screen[0] for screen in stored] == [screen[0] for screen in live]
                    assert judge_output(prepared, stored) == verdict
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.tmux
@pytest.mark.slow
def test_every_built_in_reference_solution_passes_and_a_wrong_command_fails(
        world: tuple[Sandbox, ft.Terminal]) -> None:
    box, term = world
    suite = load_suite("shell")
    start = time.monotonic()
    problems = verify_suite(box, term, suite)
    elapsed = time.monotonic() - start
    assert problems == [], "\n".join(problems)
    print(f"{len(suite.tasks)} tasks verified in {elapsed:.1f}s ({box.isolation})")
