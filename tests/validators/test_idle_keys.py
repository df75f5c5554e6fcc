"""idle_keys: keys after which neither the code nor the session's pane changed."""
from __future__ import annotations

from validators import Trajectory, idle_keys

S = "h2_writer"


def idle(b, session: str = S) -> list[bool]:
    with Trajectory.open(b.build()) as traj:
        return idle_keys.idle(traj, traj.commits_of(session))


def test_padding_after_honest_typing_is_idle(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "cat > h1.py", capture="$ cat > h1.py\n")
    b.key(S, "Enter", "ctrl", capture="$ cat > h1.py\n\n", files={"h1.py": ""})
    b.key(S, "x = 1", capture="$ cat > h1.py\nx = 1\n")
    b.key(S, "Enter", "ctrl", capture="$ cat > h1.py\nx = 1\n\n", files={"h1.py": "x = 1\n"})
    for _ in range(5):
        b.key(S, "C-l", "ctrl", capture="$ cat > h1.py\nx = 1\n\n")
    assert idle(b) == [False] * 4 + [True] * 5
    with Trajectory.open(b.build()) as traj:
        assert idle_keys.compute(traj, S) == 5


def test_the_first_key_compares_with_an_empty_screen(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "C-l", "ctrl", capture="")               # empty capture: idle
    b.key(S, "C-l", "ctrl", record=False)             # no capture: an empty screen again
    b.key("h1_writer", "a", capture="$ a\n")          # a first key that shows something
    assert idle(b) == [True, True]
    assert idle(b, "h1_writer") == [False]


def test_a_code_change_is_not_idle_even_on_a_still_pane(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a", capture="same\n")
    b.key(S, "b", capture="same\n", files={"h1.py": "x = 1\n"})     # code changed
    b.key(S, "c", capture="same\n", files={"notes.txt": "x"})        # not code: idle
    b.key(S, "d", capture="same\n", files={".tower/x.py": "y = 2\n"})  # not code: idle
    assert idle(b) == [False, False, True, True]


def test_the_pane_compares_with_the_same_sessions_previous_capture(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key(S, "a", capture="one\n")
    b.key("h1_writer", "x", capture="two\n", files={"h1.py": "x = 1\n"})   # another session
    b.key(S, "b", capture="one\n")                 # its own pane did not change; no code: idle
    b.key(S, "c", capture="one!\n")
    assert idle(b) == [False, True, False]
