"""The op library: typed composition, experience retrieval, typing plans, import cost."""
from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from harness_tower import ft
from harness_tower.sandbox import PROJECT_ROOT


def test_wrong_composition_fails_before_running() -> None:
    screen = ft.ft_tmux_capture_pane("h1_writer")
    exp = ft.Experience([("a", "k", "v", 1.0)])
    with pytest.raises(ft.GraphError, match="must give Text, but Capture gives Screen"):
        ft.ft_expert(screen, exp)  # an expert needs text, not a whole screen
    with pytest.raises(ft.GraphError, match="must give Screen"):
        ft.ft_fixation(ft.ft_const("x"))
    with pytest.raises(ft.GraphError, match="branch 'text' must be an op giving Status"):
        ft.ft_switch(ft.ft_const("text:x"), {"text": ft.ft_const("x")})
    with pytest.raises(ft.GraphError, match="non-empty Experience"):
        ft.ft_expert(ft.ft_const("q"), ft.Experience([]))
    with pytest.raises(ft.GraphError, match="chunk"):
        ft.ft_tmux_send_text("h1_writer", ft.ft_const("x"), chunk=17)
    with pytest.raises(ft.GraphError, match="Bool"):
        ft.ft_recurrent(ft.ft_const("x"), ft.ft_const("y"), 3)


def test_retrieval_ranks_by_jaccard_with_weight_prior_and_votes_topk() -> None:
    exp = ft.Experience([
        ("$ echo hello", "", "A", 1.0),
        ("$", "", "B", 1.0),
        ("$ echo", "", "C", 3.0),
    ])
    # Jaccard: A=1, B=1/3, C=2/3 -> C's weight 3 makes it 2.0
    assert exp.ranked("$ echo hello", 3) == [(2.0, 2), (1.0, 0), (pytest.approx(1 / 3), 1)]
    assert exp.retrieve("$ echo hello", topk=1) == "C"
    assert exp.retrieve("nothing shared", topk=3) is None
    votes = ft.Experience([("x y", "", "P", 1.0), ("x", "", "Q", 1.0), ("y", "", "Q", 1.0)])
    # top-1 picks P (Jaccard 1); top-3 lets Q's two half-matches (0.5 + 0.5) tie P and lose by order
    assert votes.retrieve("x y", topk=1) == "P"
    assert ft.Experience([("x y", "", "P", 0.9), ("x", "", "Q", 1.0), ("y", "", "Q", 1.0)]).retrieve("x y", 3) == "Q"


def test_experience_heredoc_round_trip() -> None:
    from harness_tower.genome import ExperienceEntry
    from harness_tower.render import experience_heredoc

    entries = (ExperienceEntry("$ ls", "k", "ctrl:Enter", 2.5),
               ExperienceEntry(' lead"ing', "multi\nline", '"quoted"', 0.0))
    parsed = ft.Experience.parse(ast.literal_eval(experience_heredoc(entries)))
    assert parsed.rows == [(e.query, e.key, e.value, e.weight) for e in entries]


@pytest.mark.parametrize("text", ["", "plain", "'''", "a'", "\\", "x\\'''y'", '"""', "é\n\t'\\n"])
def test_heredoc_literal_round_trip(text: str) -> None:
    assert ast.literal_eval(ft.heredoc(text)) == text


def test_typing_plans_respect_the_key_rules_and_modes() -> None:
    source = "import os\n\n\ndef f():\n    return os.sep\n\nX = [\n    1,\n]\n"
    for mode in ("line", "statement"):
        plan = ft.typing_plan(source, "h1.py", mode, 16)
        assert all(len(k) <= 16 for kind, k in plan if kind == "text")
        assert all(k in {"Enter", "C-d"} for kind, k in plan if kind == "ctrl")
    blocks = ft.statement_blocks(source)
    assert "".join(blocks) == source
    prefix = ""
    for block in blocks:  # statement mode keeps the file parseable after every block
        prefix += block
        ast.parse(prefix)
    line = ft.typing_plan(source, "h1.py", "line", 4)
    assert line[0] == ("text", "cat ") and line[-1] == ("ctrl", "C-d")
    with pytest.raises(ft.TowerError, match="delimiter"):
        ft.typing_plan(f"x = '{ft.EOF_MARK}'\n", "h1.py", "statement", 16)


def test_op_library_imports_fast_and_light() -> None:
    code = ("import sys, time; t = time.perf_counter(); import harness_tower.ft; "
            "dt = time.perf_counter() - t; import json; "
            "print(json.dumps([dt, sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'torch', 'ray', 'git', 'duckdb', 'pymoo', 'libtmux', 'rich', 'pydantic'))]))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": PROJECT_ROOT, "PATH": "/usr/bin:/bin"}).stdout
    seconds, heavy = json.loads(out)
    assert heavy == []
    assert seconds < 0.5  # generous for a loaded CI machine; the benchmark records the real figure
