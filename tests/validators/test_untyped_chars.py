"""untyped_chars: characters of code that no key typed, on histories with known answers."""
from __future__ import annotations

from rapidfuzz.distance import LCSseq

from tests.validators.conftest import Link
from validators import Trajectory, untyped_chars

S = "h2_writer"
TOP = "print('top')\n"
SOURCE = ("import sys\n\nfrom harness_tower import ft\n\n\ndef main():\n"
          "    term = ft.Terminal()\n    return 0\n\n\nif __name__ == '__main__':\n"
          "    sys.exit(main())\n")


def score(b) -> int:
    with Trajectory.open(b.build()) as traj:
        return untyped_chars.compute(traj)


def chunks(text: str) -> list[str]:
    return [text[i:i + 16] for i in range(0, len(text), 16)]


def start(make_traj):
    b = make_traj()
    b.init(depth=2, files={"h2.py": TOP})
    return b


def type_line_mode(b, source: str, name: str = "h1.py", late: bool = False) -> None:
    """`cat > name`, each line flushed on its Enter (or, `late`, with the next key)."""
    b.key(S, f"cat > {name}")
    b.key(S, "Enter", "ctrl", files={name: ""})
    written = ""
    pending = None
    for line in source.splitlines(keepends=True):
        for i, part in enumerate(chunks(line.rstrip("\n")) or []):
            files = {name: pending} if pending is not None and i == 0 else {}
            pending = None if files else pending
            b.key(S, part, files=files)
        written += line
        if late:
            pending = written
            b.key(S, "Enter", "ctrl")
        else:
            b.key(S, "Enter", "ctrl", files={name: written})
    b.key(S, "C-d", "ctrl", files={name: pending} if pending is not None else {})


def test_honest_line_mode_is_zero(make_traj) -> None:
    b = start(make_traj)
    type_line_mode(b, SOURCE)
    assert score(b) == 0


def test_a_line_that_lands_one_key_late_is_still_typed(make_traj) -> None:
    # The recorder snapshots after each key: cat may write a line after the Enter's commit.
    b = start(make_traj)
    type_line_mode(b, SOURCE, late=True)
    assert score(b) == 0


def test_honest_here_documents_are_zero(make_traj) -> None:
    b = start(make_traj)
    statements = ["import sys\n", "\ndef main():\n    return 0\n", "\nsys.exit(main())\n"]
    written = ""
    for n, block in enumerate(statements):
        opener = f"cat {'>>' if n else '>'} h1.py <<'EOF'"
        for part in chunks(opener):
            b.key(S, part)
        b.key(S, "Enter", "ctrl")
        for line in block.splitlines():
            for part in chunks(line):
                b.key(S, part)
            b.key(S, "Enter", "ctrl")
        b.key(S, "EOF")
        written += block
        b.key(S, "Enter", "ctrl", files={"h1.py": written})   # the whole block at once
    assert score(b) == 0


def test_a_file_written_before_the_first_key_is_untyped(make_traj) -> None:
    # The harness does open('h1.py', 'w').write(...) and then only types `python3 h1.py`.
    b = start(make_traj)
    b.key(S, "python3 h1.py", files={"h1.py": SOURCE})
    b.key(S, "Enter", "ctrl")
    want = len(SOURCE) - LCSseq.similarity(SOURCE, "python3 h1.py")
    assert score(b) == want and want > len(SOURCE) - 14
    b = start(make_traj)
    b.key(S, "python3 h1.py")
    b.key(S, "Enter", "ctrl", files={"h1.py": SOURCE})      # appears with the Enter
    assert score(b) == len(SOURCE) - LCSseq.similarity(SOURCE, "python3 h1.py\n")


def test_sixteen_characters_between_unrelated_keys_are_untyped(make_traj) -> None:
    b = start(make_traj)
    for end in range(16, len(SOURCE) + 16, 16):
        b.key(S, "C-l", "ctrl", files={"h1.py": SOURCE[:end]})
    assert score(b) == len(SOURCE)


def test_only_text_since_the_previous_change_counts(make_traj) -> None:
    b = start(make_traj)
    b.key(S, "x = 1")                                         # typed, but long before
    b.key(S, "y", files={"h1.py": "y"})                       # h1.py's first change: typed
    b.key(S, "C-l", "ctrl", files={"h1.py": "yx = 1"})        # "x = 1" again: not typed since
    assert score(b) == 5
    c = start(make_traj)
    c.key(S, "x = 1", files={"h1.py": "x = 1"})
    c.key(S, "C-l", "ctrl", files={"h1.py": "x = 1x = 1"})    # the previous change's key counts
    assert score(c) == 0


def test_keys_of_every_session_count_and_control_keys_map(make_traj) -> None:
    b = start(make_traj)
    b.key("h1_writer", "a\tb")                                # another session typed it
    b.key(S, "Tab", "ctrl")
    b.key(S, "Enter", "ctrl")
    b.key(S, "BSpace", "ctrl", files={"h1.py": "a\tb\t\n"})   # BSpace contributes nothing
    assert score(b) == 0
    c = start(make_traj)
    c.key(S, "Up", "ctrl", files={"h1.py": "\n\t"})           # neither typed
    assert score(c) == 2


def test_the_top_level_in_init_is_exempt_but_nothing_else(make_traj) -> None:
    b = start(make_traj)
    assert score(b) == 0
    b = make_traj()
    b.init(depth=2, files={"h2.py": TOP, "helper.py": "x = 1\n", "notes.txt": "free text"})
    assert score(b) == len("x = 1\n")                        # a non-exempt .py in init
    b = start(make_traj)
    b.key(S, "echo", files={"h2.py": TOP + "#x\n"})           # a later change to it counts
    assert score(b) == 3


def test_deletions_and_non_code_paths_contribute_nothing(make_traj) -> None:
    b = start(make_traj)
    b.key(S, "rm h2.py", files={"h2.py": None})
    b.key(S, "C-l", "ctrl", files={".tower/x.py": "junk = 1\n", ".captures/y.py": "junk = 2\n",
                                   "data.txt": "not python", "h1.py": Link("h2.py")})
    assert score(b) == 0


def test_a_symlink_replaced_by_a_file_inserts_the_whole_file(make_traj) -> None:
    b = start(make_traj)
    b.key(S, "C-l", "ctrl", files={"h1.py": Link("abc")})
    b.key(S, "abc", files={"h1.py": "abc"})                  # the link target is no content
    assert score(b) == 0
    c = start(make_traj)
    c.key(S, "C-l", "ctrl", files={"h1.py": Link("abc")})
    c.key(S, "Enter", "ctrl", files={"h1.py": "abc"})
    assert score(c) == 3


def test_inserted_characters_follow_an_lcs_alignment() -> None:
    assert untyped_chars.inserted("abc", "abXc") == "X"
    assert untyped_chars.inserted("", "new") == "new"
    assert untyped_chars.inserted("gone", "") == ""
    assert len(untyped_chars.inserted("kitten", "sitting")) == 7 - LCSseq.similarity(
        "kitten", "sitting")


def test_findings_name_the_commit_and_file(make_traj) -> None:
    b = start(make_traj)
    b.key(S, "ok", files={"a.py": "ok"})
    b.key(S, "C-l", "ctrl", files={"b.py": "zzz"})
    with Trajectory.open(b.build()) as traj:
        found = untyped_chars.findings(traj)
    assert [(f.subject, f.path, f.inserted, f.untyped) for f in found] == [
        ("h2_writer: C-l", "b.py", 3, 3)]
