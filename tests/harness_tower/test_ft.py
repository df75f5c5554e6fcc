"""The op library: typed composition, experience retrieval, typing plans, import cost."""
from __future__ import annotations

import ast
import json
import socket
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


# -- op results -------------------------------------------------------------------------------
class Gives(ft.Op):
    """An op that gives a fixed status and counts its runs: a leaf of the graphs below."""

    gives = ft.STATUS

    def __init__(self, status: ft.Status) -> None:
        super().__init__()
        self.status, self.runs = status, 0

    def _apply(self, ctx: ft.Context) -> ft.Status:
        self.runs += 1
        return self.status


def _context() -> ft.Context:
    """A pass over ops that never touch the terminal (a socket that nothing is sent on)."""
    ours, _theirs = socket.socketpair()
    return ft.Context(ft.Terminal(ours))


def test_a_status_is_a_value_whose_text_is_what_a_level_prints() -> None:
    failed = ft.Status.failed("h1.py did not finish within 60s")
    assert (str(ft.OK), ft.OK.ok) == ("ok", True)
    assert (str(failed), failed.ok, failed.reason) == ("error: h1.py did not finish within 60s", False,
                                                        "h1.py did not finish within 60s")
    assert failed == ft.Status.failed("h1.py did not finish within 60s")
    assert failed != ft.OK and failed != str(failed)  # typed: never equal to its text
    with pytest.raises(AttributeError, match="a Status is a value"):
        failed.ok = True  # the point: a Status cannot be changed
    assert ft.finish("h1_writer", ft.OK) == 0


def test_sequential_stops_at_the_first_failed_status_and_recurrent_reports_its_validator() -> None:
    first, failed, never = Gives(ft.OK), Gives(ft.Status.failed("no")), Gives(ft.OK)
    assert ft.ft_sequential(first, failed, never).run(_context()) == ft.Status.failed("no")
    assert (first.runs, failed.runs, never.runs) == (1, 1, 0)
    # a text op last is no status of its own: the sequence gives OK, never the text
    assert ft.ft_sequential(Gives(ft.OK), ft.ft_const("error: not a status")).run(_context()) == ft.OK
    body = Gives(ft.OK)
    looped = ft.ft_recurrent(body, ft.Const("", ft.BOOL), 3).run(_context())
    assert looped == ft.Status.failed("validator never passed") and body.runs == 3
    assert ft.ft_recurrent(body, ft.Const("yes", ft.BOOL), 3).run(_context()) == ft.OK and body.runs == 3
    routed = ft.ft_switch(ft.ft_const("ctrl:Enter"), {"text": Gives(ft.OK), "ctrl": Gives(ft.Status.failed("c"))})
    assert routed.run(_context()) == ft.Status.failed("c")


# -- the typing machine -------------------------------------------------------------------------
def _typed(machine: ft.Machine[ft.Status], values: list[str], chunk: int = 16
           ) -> tuple[list[tuple[str, str]], ft.Status]:
    """The sends a machine makes when its NEXTs are answered with `values` (then END_MARK)."""
    sends: list[tuple[str, str]] = []
    answers = iter([*values, ft.END_MARK])

    def press(key: ft.Key) -> None:
        sends.extend((key.kind, k) for k in (ft.chunks(key.keys, chunk) if key.kind == "text" else [key.keys]))

    return sends, ft.run(machine, press, lambda: next(answers))


def _files(sends: list[tuple[str, str]]) -> list[str]:
    """What `cat` has written to the file after each here-document closes (or after C-d)."""
    files, content, line, doc = [], "", "", False
    for kind, keys in sends:
        if kind == "text":
            line += keys
        elif keys == "Enter":
            if line.startswith("cat "):
                doc, content = "<<" in line, content if " >> " in line else ""
            elif line == ft.EOF_MARK and doc:
                files.append(content)
            else:
                content += line + "\n"
            line = ""
        elif keys == "C-d":
            files.append(content)
    return files


SOURCE = "import os\n\n\ndef f():\n    return os.sep\n\n\nX = [\n    1,\n]\n"


@pytest.mark.parametrize("chunk", [1, 4, 16])
def test_a_known_source_and_an_expert_source_are_typed_by_one_machine(chunk: int) -> None:
    # line mode: the writer of a known source and the expert writer press the very same keys
    plan = ft.typing_plan(SOURCE, "h1.py", "line", chunk)
    sends, status = _typed(ft.generated("h1.py", "line"), SOURCE.splitlines(), chunk)
    assert sends == plan and status == ft.OK and _files(plan) == [SOURCE]
    # statement mode: a known source closes after whole statements, an expert's whenever the
    # file parses; both leave a file that parses after every close, and the same file at the end
    plan = ft.typing_plan(SOURCE, "h1.py", "statement", chunk)
    sends, status = _typed(ft.generated("h1.py", "statement"), SOURCE.splitlines(), chunk)
    for files in (_files(plan), _files(sends)):
        assert files[-1] == SOURCE and len(files) >= 3
        for content in files:
            ast.parse(content)
    assert _files(plan) == ["import os\n", "import os\n\n\ndef f():\n    return os.sep\n", SOURCE]


def test_an_expert_source_ends_on_its_mark_or_a_blank_run_and_is_bounded() -> None:
    sends, status = _typed(ft.generated("h1.py", "line"), ["x = 1", " \t" + ft.END_MARK, "y = 2"])
    assert _files(sends) == ["x = 1\n"] and status == ft.OK
    sends, status = _typed(ft.generated("h1.py", "line"), ["x = 1", "", "", "", "y = 2"])
    assert _files(sends) == ["x = 1\n\n\n"] and status == ft.OK  # the third blank line is never typed
    sends, status = _typed(ft.generated("h1.py", "line", max_lines=2), ["a = 1", "b = 2", "c = 3"])
    assert _files(sends) == ["a = 1\nb = 2\n"] and sends[-1] == ("ctrl", "C-d")
    assert status == ft.Status.failed("expert source exceeded max_lines=2 or max_bytes=None")
    # an answer is typed as its first line, tabs as spaces, control characters dropped; in
    # statement mode a line that is the delimiter is dropped (it would close the document)
    sends, status = _typed(ft.generated("h1.py", "statement"), ["if x:\tpass\nmore", ft.EOF_MARK, "y = '\x01'"])
    assert _files(sends) == ["if x:    pass\n", "if x:    pass\ny = ''\n"] and status == ft.OK


def test_the_machine_says_where_the_writer_waits_and_what_the_screen_shows() -> None:
    keys: list[ft.Key] = []
    answers = iter(["x = 1", ft.END_MARK])
    ft.run(ft.generated("h1.py", "statement"), keys.append, lambda: next(answers))
    enters = [(k.shows, k.settle) for k in keys if k.keys == "Enter"]
    # open (wait for the here-document's prompt), the line, close (wait for the shell's prompt)
    assert enters == [("> ", True), ("> ", False), (ft.PROMPT, True)]
    with pytest.raises(ft.TowerError, match="unknown typing mode"):
        ft.run(ft.typing_machine("h1.py", "paste"), keys.append, lambda: None)


def test_the_op_library_imports_only_the_standard_library_and_itself() -> None:
    code = ("import sys; before = set(sys.modules); import harness_tower.ft; import json; "
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": PROJECT_ROOT, "PATH": "/usr/bin:/bin"}).stdout
    loaded = json.loads(out)
    ours = {m for m in loaded if m.split(".")[0] == "harness_tower"}
    assert ours == {"harness_tower", "harness_tower.errors", "harness_tower.ft", "harness_tower.slots", *(
        f"harness_tower.ft.{m}" for m in ("build", "experience", "graph", "ops", "terminal", "typist", "work",
                                          "writer"))}
    assert {m.split(".")[0] for m in loaded} - {"harness_tower"} <= sys.stdlib_module_names
