"""task_correct: the last capture of h1_writer shows the expected output."""
from __future__ import annotations

from validators import Trajectory, task_correct

ECHO = "$ echo hello world\n"


def run(make_traj, captures: list[str], **init) -> int:
    b = make_traj()
    b.init(**init)
    b.key("h2_writer", "python3 h1.py", capture="$ python3 h1.py\n")
    for text in captures:
        b.key("h1_writer", "x", capture=text)
    b.done()
    with Trajectory.open(b.build()) as traj:
        return task_correct.compute(traj)


def test_output_line_in_the_last_capture(make_traj) -> None:
    assert run(make_traj, ["$ ", ECHO + "hello world\n$ "]) == 1


def test_trailing_spaces_are_ignored(make_traj) -> None:
    assert run(make_traj, [ECHO + "hello world    \n$ "]) == 1


def test_only_the_last_capture_counts(make_traj) -> None:
    assert run(make_traj, [ECHO + "hello world\n$ ", "$ clear\n$ "]) == 0
    assert run(make_traj, ["$ ", ECHO + "$ ", "hello world\n"]) == 1


def test_the_echoed_command_line_does_not_count(make_traj) -> None:
    assert run(make_traj, [ECHO + "$ "]) == 0
    # Even when the expectation itself looks like a prompt line.
    assert run(make_traj, ["$ echo hi\n"], expected="$ echo hi") == 0


def test_partial_or_longer_lines_do_not_count(make_traj) -> None:
    assert run(make_traj, [ECHO + "hello worlds\n"]) == 0
    assert run(make_traj, [ECHO + " hello world\n"]) == 0


def test_without_h1_writer_it_is_zero(make_traj) -> None:
    assert run(make_traj, []) == 0


def test_without_a_manifest_it_is_zero(make_traj) -> None:
    b = make_traj()
    b.commit("init", {"h1.py": ""})
    b.key("h1_writer", "x", capture="hello world\n")
    with Trajectory.open(b.build()) as traj:
        assert task_correct.compute(traj) == 0


def test_multi_line_expectations_must_be_consecutive() -> None:
    match = task_correct.last_capture_matches
    assert match("$ run\na\nb\n$ ", "a\nb", "$ ", "run")
    assert not match("$ run\na\nx\nb\n$ ", "a\nb", "$ ", "run")
    assert not match("run\n", "run", "", "run")        # no prompt: the echoed command is excluded
