"""score() on a small depth-3 tower with every value worked out by hand; the command lines."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import validators

ALL_REPO_METRICS = ["code_bytes", "bytes_ratio", "bytes_convergence", "edit_distance",
                    "task_correct", "keys_audit", "self_read", "untyped_chars", "tamper"]
ALL_SESSION_METRICS = ["avg_interval", "max_diff_len", "syntax_ratio", "idle_keys"]


@pytest.fixture
def tower(make_traj) -> Path:
    b = make_traj()
    b.init(depth=3, files={"h3.py": "print(3)\n"})
    h3 = [("cat > h2.py", "text", {}), ("Enter", "ctrl", {"h2.py": ""}),
          ("print(2", "text", {"h2.py": "print(2"}), (")", "text", {"h2.py": "print(2)"}),
          ("Enter", "ctrl", {"h2.py": "print(2)\n"}), ("C-d", "ctrl", {}),
          ("python3 h2.py", "text", {})]
    for i, (keys, kind, files) in enumerate(h3):
        b.key("h3_writer", keys, kind, files=files, time=10.0 + 0.5 * i)
    h2 = [("cat > h1.py", "text", {}), ("Enter", "ctrl", {"h1.py": ""}),
          ("print('hi')", "text", {"h1.py": "print('hi')"}),
          ("Enter", "ctrl", {"h1.py": "print('hi')\n"})]
    for i, (keys, kind, files) in enumerate(h2):
        b.key("h2_writer", keys, kind, files=files, time=f"13.{i + 1}")
    b.key("h3_writer", "Enter", "ctrl", time=13.5)     # sees h2's whole file: 12 characters
    b.key("h1_writer", "echo hello world", time=14.0, capture="$ echo hello world\n")
    b.key("h1_writer", "Enter", "ctrl", time=14.5,
          capture="$ echo hello world\nhello world\n$ \n\n")
    b.key("h1_writer", "C-l", "ctrl", time=15.0,     # padding: changes nothing at all
          capture="$ echo hello world\nhello world\n$ \n\n")
    b.done()
    return b.build()


# syntax_ratio@h3: of its 8 commits, 4 change code ("", "print(2", "print(2)", + "\n"), and
# "print(2" does not parse: 3 / 4. h1's C-l is its one idle key.
EXPECTED = {
    "avg_interval@h1": 0.5, "max_diff_len@h1": 0, "syntax_ratio@h1": 1.0, "commits@h1": 3,
    "avg_interval@h2": 0.1, "max_diff_len@h2": 11, "syntax_ratio@h2": 1.0, "commits@h2": 4,
    "avg_interval@h3": 0.5, "max_diff_len@h3": 12, "syntax_ratio@h3": 0.75, "commits@h3": 8,
    "idle_keys@h1": 1, "idle_keys@h2": 0, "idle_keys@h3": 0,
    "code_bytes@h1": 12, "code_bytes@h2": 9, "code_bytes@h3": 9, "bytes_ratio@h2": 1.0,
    "edit_distance@h2": 4 / 12, "edit_distance@h3": 1 / 9,
    "bytes_convergence": 0.0, "task_correct": 1, "keys_audit": 0, "self_read": 0,
    "untyped_chars": 0, "tamper": 0,
}


def test_score_known_answers(tower: Path) -> None:
    result = validators.score(tower)
    assert result["depth"] == 3
    assert result["sessions"] == ["h3_writer", "h2_writer", "h1_writer"]
    assert result["metrics"] == EXPECTED


def test_score_lists_every_writer_even_silent_ones(make_traj) -> None:
    b = make_traj()
    b.init(depth=3, files={"h3.py": "x = 1\n"})
    b.key("h3_writer", "a", files={"h2.py": "y = 2\n"})
    b.key("helper", "b")
    m = validators.score(b.build())["metrics"]
    assert (m["commits@h1"], m["avg_interval@h1"], m["max_diff_len@h1"], m["syntax_ratio@h1"],
            m["idle_keys@h1"]) == (0, math.inf, 0, None, 0)
    assert m["commits@h3"] == 1 and m["avg_interval@h3"] == math.inf
    assert m["commits@helper"] == 1
    assert m["code_bytes@h1"] is None
    assert m["bytes_convergence"] == 0.0            # ratios start at n = 2: h3 / h2 only
    assert m["task_correct"] == 0


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_cli_prints_one_metric(tower: Path) -> None:
    out = run("-m", "validators.avg_interval", tower, "h3_writer")
    assert (out.returncode, out.stdout, out.stderr) == (0, "0.5\n", "")
    out = run("-m", "validators.code_bytes", tower)
    assert (out.returncode, json.loads(out.stdout)) == (0, {"h1": 12, "h2": 9, "h3": 9})
    out = run("-m", "validators.syntax_ratio", tower, "h3")       # a rank label works too
    assert out.stdout == "0.75\n"
    out = run("-m", "validators.idle_keys", tower, "h1")
    assert out.stdout == "1\n"
    out = run("-m", "validators.untyped_chars", tower)
    assert (out.returncode, out.stdout) == (0, "0\n")


def test_cli_prints_inf_as_infinity(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key("h1_writer", "a")
    out = run("-m", "validators.avg_interval", b.build(), "h1_writer")
    assert (out.returncode, out.stdout) == (0, "Infinity\n")


def test_cli_all_metrics_as_json(tower: Path) -> None:
    out = run("-m", "validators", tower)
    assert out.returncode == 0 and out.stderr == ""
    assert json.loads(out.stdout) == validators.score(tower)


def test_every_metric_module_runs(tower: Path) -> None:
    # One interpreter for all: each module's main is what `python -m` runs.
    code = "\n".join(
        ["import runpy, sys, contextlib, io"]
        + [f"sys.argv = ['x', {str(tower)!r}] + {extra!r}\n"
           f"try:\n    runpy.run_module('validators.{name}', run_name='__main__')\n"
           f"except SystemExit as e:\n    print('{name}', e.code)"
           for names, extra in ((ALL_REPO_METRICS, []), (ALL_SESSION_METRICS, ["h2_writer"]))
           for name in names])
    out = run("-c", code)
    codes = [line for line in out.stdout.splitlines() if line.split()[0].isidentifier()]
    assert codes == [f"{n} 0" for n in ALL_REPO_METRICS + ALL_SESSION_METRICS], out.stderr


@pytest.mark.parametrize("case", ["missing", "plain dir", "no commits", "unknown session",
                                  "not a trajectory", "no manifest"])
def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path, tower: Path, make_traj,
                                            case: str) -> None:
    target, message = {
        "missing": (tmp_path / "nope", "no such file or directory"),
        "plain dir": (tmp_path, "not a git repository"),
        "no commits": (tmp_path / "empty", "no commits"),
        "unknown session": (tower, "unknown session 'h7_writer'"),
        "not a trajectory": (None, "not a trajectory: its root commit is 'initial import'"),
        "no manifest": (None, "not a trajectory: 'init' has no .tower/manifest.json"),
    }[case]
    if case == "no commits":
        subprocess.run(["git", "init", "-q", str(target)], check=True)
    if target is None:               # an ordinary git repository: an error, never zeros
        b = make_traj()
        b.commit("initial import" if case == "not a trajectory" else "init", {"README": "x"})
        b.key("h7_writer", "a")
        target = b.build()
    for argv in (["-m", "validators.max_diff_len", target, "h7_writer"], ["-m", "validators", target]):
        if case == "unknown session" and argv[1] == "validators":
            continue
        out = run(*argv)
        assert out.returncode == 2
        assert out.stdout == ""
        assert len(out.stderr.splitlines()) == 1
        assert out.stderr.startswith("validators: error: ") and message in out.stderr
