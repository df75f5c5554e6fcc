"""task_correct: the last capture of h1_writer shows the expected output as printed output."""
from __future__ import annotations

from validators import Trajectory, task_correct

WIDTH = 100
PROMPT = "$ "


def screen(*rows: str, height: int = 6) -> str:
    """A capture the way tmux gives it: `height` rows, trailing spaces trimmed."""
    rows = tuple(r.rstrip() for r in rows)[-height:]
    return "\n".join(rows + ("",) * (height - len(rows)))


def run(make_traj, keys: list[tuple[str, str, str]], **init) -> int:
    """h1_writer sends `keys` as (keys, kind, capture after it); returns task_correct."""
    b = make_traj()
    b.init(**init)
    b.key("h2_writer", "python3 h1.py", capture="$ python3 h1.py\n")
    for keys_, kind, capture in keys:
        b.key("h1_writer", keys_, kind, capture=capture)
    b.done()
    with Trajectory.open(b.build()) as traj:
        return task_correct.compute(traj)


def typed(text: str, before: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """Typing `text` at the prompt in 16-character keys, the row wrapping at WIDTH."""
    out = []
    for end in range(16, len(text) + 16, 16):
        line = PROMPT + text[:end]
        rows = [line[i:i + WIDTH] for i in range(0, len(line), WIDTH)]
        out.append((text[end - 16:end], "text", screen(*before, *rows)))
    return out


def enter(*rows: str) -> list[tuple[str, str, str]]:
    return [("Enter", "ctrl", screen(*rows))]


COMMAND = "echo hello world"


def test_output_printed_after_enter_counts(make_traj) -> None:
    keys = typed(COMMAND) + enter("$ echo hello world", "hello world", "$")
    assert run(make_traj, keys) == 1


def test_trailing_spaces_are_ignored(make_traj) -> None:
    keys = typed(COMMAND) + enter("$ echo hello world", "hello world", "$")
    assert run(make_traj, keys, expected="hello world   ") == 1


def test_the_typed_line_and_its_echo_do_not_count(make_traj) -> None:
    # `:` ignores its arguments: the screen shows the words only where they were typed.
    keys = typed(": hello world") + enter("$ : hello world", "$")
    assert run(make_traj, keys) == 0
    # Typed at a prompt-less program (cat): the echoed row holds exactly the words.
    keys = [("cat", "text", screen("$ cat")), ("Enter", "ctrl", screen("$ cat", "")),
            ("hello world", "text", screen("$ cat", "hello world"))]
    assert run(make_traj, keys) == 0


def test_a_wrapped_typed_line_does_not_count(make_traj) -> None:
    text = ":" + " " * 97 + "hello world"           # "hello world" wraps onto a row alone
    keys = typed(text)
    assert keys[-1][2].split("\n")[1] == "hello world"
    assert run(make_traj, keys) == 0                                     # never submitted
    line = PROMPT + text
    assert run(make_traj, keys + enter(line[:WIDTH], line[WIDTH:], "$")) == 0   # submitted


def test_text_never_submitted_does_not_count(make_traj) -> None:
    keys = [("cat", "text", screen("$ cat")), ("Enter", "ctrl", screen("$ cat", "")),
            ("hello world", "text", screen("$ cat", "hello world"))]
    assert run(make_traj, keys, prompt="") == 0          # no prompt to tell input by: births do


def test_output_keeps_its_birth_when_the_screen_scrolls(make_traj) -> None:
    lines = ["$"]
    keys: list[tuple[str, str, str]] = []

    def command(text: str, *output: str) -> None:
        lines[-1] = PROMPT + text
        keys.append((text, "text", screen(*lines)))
        lines.extend([*output, "$"])
        keys.append(("Enter", "ctrl", screen(*lines)))

    command(COMMAND, "hello world")
    for _ in range(4):                                   # the screen scrolls by one row
        command("true")
    assert keys[-1][2].split("\n")[0] == "hello world"
    assert run(make_traj, keys) == 1
    command("true")                                      # ... and now it is gone
    assert run(make_traj, keys) == 0


def test_rows_born_at_other_control_keys_are_input(make_traj) -> None:
    # Up recalls a history line; C-l redraws; BSpace edits: none of them runs anything.
    base = typed(COMMAND) + enter("$ echo hello world", "hello world", "$")
    assert run(make_traj, base) == 1
    assert run(make_traj, base + [("C-l", "ctrl", screen("$"))]) == 0
    recalled = [("Up", "ctrl", screen("$ echo hello world", "hello world", "$ hello world"))]
    assert run(make_traj, [("x", "text", screen("$ x"))] + [
        ("Up", "ctrl", screen("hello world", "$ x"))]) == 0
    assert run(make_traj, base + recalled) == 1        # the old output row is still output
    assert run(make_traj, [("BSpace", "ctrl", screen("hello world"))]) == 0


def test_the_submitted_line_echoed_back_at_enter_is_input(make_traj) -> None:
    # `stty -echo; cat`: the typed words are not echoed while typing; cat prints them at Enter.
    quiet = typed("stty -echo; cat") + enter("$ stty -echo; cat", "")
    quiet += [("hello world", "text", screen("$ stty -echo; cat", ""))]
    assert run(make_traj, quiet + enter("$ stty -echo; cat", "hello world", "")) == 0
    # `set -v`: bash prints each command line it reads, then fails to run it.
    verbose = typed("set -v") + enter("$ set -v", "$")
    verbose += typed("hello world", ("$ set -v",))
    verbose += enter("$ set -v", "$ hello world", "hello world",
                     "bash: hello: command not found", "$")
    assert run(make_traj, verbose) == 0
    # Edited with BSpace, or recalled from history with Up: still the same line.
    edited = quiet[:2] + [("hello worlx", "text", screen("$ stty -echo; cat", "")),
                          ("BSpace", "ctrl", screen("$ stty -echo; cat", "")),
                          ("d", "text", screen("$ stty -echo; cat", ""))]
    assert run(make_traj, edited + enter("$ stty -echo; cat", "hello world", "")) == 0
    recalled = verbose + [("Up", "ctrl", screen("$ set -v", "$ hello world", "hello world",
                                                 "bash: hello: command not found", "$ hello world"))]
    recalled += enter("$ hello world", "hello world", "bash: hello: command not found",
                      "$ hello world", "hello world", "bash: hello: command not found", "$")
    assert run(make_traj, recalled) == 0
    # The real command's answer differs from the line it submitted: output.
    assert run(make_traj, typed(COMMAND) + enter("$ echo hello world", "hello world", "$")) == 1


def test_only_the_last_capture_counts(make_traj) -> None:
    keys = typed(COMMAND) + enter("$ echo hello world", "hello world", "$")
    assert run(make_traj, keys + typed("clear") + enter("$")) == 0


def test_the_prompt_row_never_counts(make_traj) -> None:
    keys = typed("echo '$ echo hi'") + enter("$ echo '$ echo hi'", "$ echo hi", "$")
    assert run(make_traj, keys, expected="$ echo hi") == 0


def test_partial_or_longer_lines_do_not_count(make_traj) -> None:
    assert run(make_traj, typed("echo hello worlds") + enter(
        "$ echo hello worlds", "hello worlds", "$")) == 0
    assert run(make_traj, typed("echo ' hello world'") + enter(
        "$ echo ' hello world'", " hello world", "$")) == 0


def test_multi_line_expectations_must_be_consecutive_output(make_traj) -> None:
    two = typed("printf 'a\\nb\\n'") + enter("$ printf 'a\\nb\\n'", "a", "b", "$")
    assert run(make_traj, two, expected="a\nb") == 1
    gap = typed("printf 'a\\nx\\nb\\n'") + enter("$ printf 'a\\nx\\nb\\n'", "a", "x", "b", "$")
    assert run(make_traj, gap, expected="a\nb") == 0
    # "a" printed, "b" only typed: not both output.
    half = typed("echo a") + enter("$ echo a", "a", "$") + [("b", "text", screen(
        "$ echo a", "a", "$ b"))]
    assert run(make_traj, half, expected="a\n$ b", prompt="") == 0


def test_without_h1_writer_or_expected_it_is_zero(make_traj) -> None:
    assert run(make_traj, []) == 0
    keys = typed(COMMAND) + enter("$ echo hello world", "hello world", "$")
    manifest = {"depth": 2, "task": {"command": COMMAND}, "prompt": PROMPT}
    assert run(make_traj, keys, manifest=manifest) == 0
    assert run(make_traj, keys, manifest={"depth": 2}) == 0


def test_without_a_manifest_it_is_zero(make_traj) -> None:
    b = make_traj()
    b.commit("init", {"h1.py": ""})
    b.key("h1_writer", "Enter", "ctrl", capture="hello world\n")
    with Trajectory.open(b.build()) as traj:
        assert task_correct.compute(traj) == 0


def test_births_and_scroll_offsets() -> None:
    assert task_correct.scroll_offset(["$ a", "x", "$ b", "y"], ["$ b", "y", "$"]) == 2
    assert task_correct.scroll_offset(["a", "", ""], ["", "", "b"]) is None   # blanks never vote
    got = task_correct.births([("text", "$ ls\n"), ("Enter", "$ ls\nh1.py\n$ \n"),
                               ("text", "$ ls\nh1.py\n$ x\n")])
    assert got == [("$ ls", 0), ("h1.py", 1), ("$ x", 2), ("", 1)]
