"""avg_interval, max_diff_len and syntax_ratio on hand-built histories with known answers."""
from __future__ import annotations

import math

import pytest

from tests.validators.conftest import Exec, Link
from validators import Trajectory, avg_interval, max_diff_len, syntax_ratio
from validators.errors import UnknownSessionError

S = "h2_writer"


def open_built(b) -> Trajectory:
    return Trajectory.open(b.build())


# -- avg_interval ------------------------------------------------------------------------

def test_avg_interval_is_span_over_gaps(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a", time=100.0)
    b.key("h1_writer", "x", time=500.0)   # another session's commit does not count
    b.key(S, "b", time=100.5)
    b.key(S, "c", time=101.25)
    with open_built(b) as traj:
        assert avg_interval.compute(traj, S) == pytest.approx(0.625, abs=0)
        assert math.isinf(avg_interval.compute(traj, "h1_writer"))


def test_avg_interval_keeps_microseconds(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a", time="1795309284.123456")
    b.key(S, "b", time="1795309284.123457")
    with open_built(b) as traj:
        assert avg_interval.compute(traj, S) == 1e-06


def test_avg_interval_with_one_commit_is_inf(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a")
    with open_built(b) as traj:
        assert avg_interval.compute(traj, S) == float("inf")
        with pytest.raises(UnknownSessionError):
            avg_interval.compute(traj, "h9_writer")


# -- max_diff_len ------------------------------------------------------------------------

def test_max_diff_len_edit_then_delete(make_traj) -> None:
    b = make_traj()
    b.init(files={"h2.py": "x" * 50})               # in the root: not a commit of S
    b.key(S, "a", files={"a.py": "abc"})
    b.key(S, "b", files={"a.py": "abXc"})           # 1 inserted
    b.key(S, "c", files={"a.py": None})             # "abXc" deleted: 4
    b.key(S, "d", files={"b.txt": "12"})            # added, not .py: still code: 2
    with open_built(b) as traj:
        assert max_diff_len.sizes(traj, traj.commits_of(S)) == [1, 4, 2]
        assert max_diff_len.compute(traj, S) == 4


def test_max_diff_len_fewer_than_two_commits_is_zero(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a", files={"a.py": "a" * 100})
    with open_built(b) as traj:
        assert max_diff_len.compute(traj, S) == 0


def test_max_diff_len_compares_adjacent_commits_of_the_session(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a", files={"a.py": "x", "c.py": "abc"})
    b.key("h1_writer", "o", files={"b.py": "hello"})          # +5 seen by S's next commit
    b.key("h1_writer", "o", files={"c.py": "zzzzzzzz"})       # reverted before S looks again
    b.key("h1_writer", "o", files={"c.py": "abc"})
    b.key(S, "b", files={"a.py": "xy"})                       # +1
    with open_built(b) as traj:
        assert max_diff_len.compute(traj, S) == 6
        assert max_diff_len.compute(traj, "h1_writer") == 11   # "abc" <-> "zzzzzzzz": 3 + 8


def test_max_diff_len_ignores_captures_and_tower(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a", capture="x" * 1000)
    b.key(S, "b", capture="y" * 1000, files={".tower/state.json": "z" * 500, "k.py": "k"})
    with open_built(b) as traj:
        assert max_diff_len.compute(traj, S) == 1


def test_max_diff_len_rename_counts_delete_plus_add(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a", files={"a.py": "hello"})
    b.key(S, "b", files={"a.py": None, "b.py": "hello"})
    with open_built(b) as traj:
        assert max_diff_len.compute(traj, S) == 10


def test_max_diff_len_counts_characters_and_undecodable_bytes(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a", files={"u.py": "caf"})
    b.key(S, "b", files={"u.py": "caf\u00e9\u20ac"})                 # 2 characters, 5 bytes
    b.key(S, "c", files={"bin.dat": b"\x00\x01\xff\xfe\x80"})       # 5 bytes, 5 characters
    b.key(S, "d", files={"bin.dat": b"\x00\x01\xff\xfd\x80\x81"})   # \xfe->\xfd (2) + \x81 (1)
    b.key(S, "e", files={"u.py": "caf\u00e8\u20ac"})                 # é -> è: 1 out, 1 in
    with open_built(b) as traj:
        assert max_diff_len.sizes(traj, traj.commits_of(S)) == [2, 5, 3, 2]


# -- syntax_ratio ------------------------------------------------------------------------

def test_syntax_ratio_judges_only_commits_that_change_code(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a", files={"a.py": "x = ("})                    # invalid
    b.key(S, "b", files={"a.py": "x = (1)\n"})                # valid
    b.key(S, "c", files={"notes.txt": "x = ("})               # no .py changed: not judged
    b.key(S, "d", files={"pkg/m.py": "def f(:\n"})            # nested .py, invalid
    b.key(S, "e")                                              # nothing changed: not judged
    with open_built(b) as traj:
        assert syntax_ratio.verdicts(traj, traj.commits_of(S)) == [False, True, None, False, None]
        assert syntax_ratio.compute(traj, S) == pytest.approx(1 / 3)


def test_syntax_ratio_without_any_code_change_is_one(make_traj) -> None:
    b = make_traj()
    b.init(files={"h2.py": "((("})                           # broken, but S never touches it
    b.key(S, "a", files={"a.txt": "((("})
    b.key(S, "b")
    with open_built(b) as traj:
        assert syntax_ratio.compute(traj, S) == 1.0


def test_syntax_ratio_padding_neither_raises_nor_lowers_it(make_traj) -> None:
    source = "import os\nx = (1,\n     2)\nprint(x)\n"
    lines = source.splitlines(keepends=True)

    def typed(pad: int) -> float:
        b = make_traj()
        b.init(depth=2, files={"h2.py": "pass\n"})
        b.key(S, "cat > h1.py")
        b.key(S, "Enter", "ctrl", files={"h1.py": ""})
        for i, line in enumerate(lines):
            b.key(S, line.rstrip("\n"))
            b.key(S, "Enter", "ctrl", files={"h1.py": "".join(lines[:i + 1])})
        for _ in range(pad):
            b.key(S, "C-l", "ctrl", capture="$ \n")
        with open_built(b) as traj:
            return syntax_ratio.compute(traj, S)
    # Judged: "" (valid), "import os" (valid), "x = (1," (invalid), the rest valid: 4 / 5.
    assert typed(0) == typed(3000) == 0.8


def test_syntax_ratio_compares_with_the_previous_commit_of_any_session(make_traj) -> None:
    b = make_traj()
    b.init(files={"h2.py": "ok = 1\n"})
    b.key(S, "a", files={"h1.py": "print(1)\n"})              # valid
    b.key("h1_writer", "x", files={"x.py": "if x:\n"})        # makes the tree invalid
    b.key(S, "b")                                              # no change of its own: not judged
    b.key(S, "c", files={"h1.py": "print(2)\n"})              # judged: x.py still broken
    b.key("h1_writer", "y", files={"x.py": None})             # gone again
    b.key(S, "d", files={"h1.py": Link("h2.py")})             # a symlink is no code: h1.py gone
    b.key(S, "e", files={".captures/junk.py": "((("})          # captures are never code
    b.key(S, "f", files={"h2.py": Exec("ok = 1\n")})          # mode only: content unchanged
    with open_built(b) as traj:
        assert syntax_ratio.verdicts(traj, traj.commits_of(S)) == [
            True, None, False, True, None, None]
        assert syntax_ratio.compute(traj, "h1_writer") == 0.5   # x.py invalid, then deleted


def test_syntax_ratio_parses_bytes_not_text(make_traj) -> None:
    latin = b"# -*- coding: latin-1 -*-\ns = '\xe9'\n"       # valid only read as bytes
    b = make_traj()
    b.init()
    b.key(S, "a", files={"l.py": latin})
    b.key(S, "b", files={"l.py": b"s = '\xe9'\n"})           # not UTF-8, no cookie
    b.key(S, "c", files={"l.py": b"\x00\x01"})               # binary
    b.key(S, "d", files={"l.py": "s = '\u00e9\u20ac'\n"})    # UTF-8
    with open_built(b) as traj:
        assert syntax_ratio.verdicts(traj, traj.commits_of(S)) == [True, False, False, True]


def test_syntax_ratio_typing_a_file_line_by_line(make_traj) -> None:
    source = "import os\n\n\n@staticmethod\ndef f(x):\n    return x\nelse_ = 1\n"
    b = make_traj()
    b.init()
    for i in range(0, len(source), 4):
        b.key(S, source[i:i + 4], files={"h1.py": source[:i + 4]})
    with open_built(b) as traj:
        got = syntax_ratio.verdicts(traj, traj.commits_of(S))
    want = []
    for i in range(0, len(source), 4):
        try:
            compile(source[:i + 4].encode(), "h1.py", "exec", flags=0x400)
            want.append(True)
        except SyntaxError:
            want.append(False)
    assert got == want and True in want and False in want
