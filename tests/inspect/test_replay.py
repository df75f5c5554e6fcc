"""Replay and trajectory export on a real run's store, after the cluster is gone."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evolve.replay import MAX_IDLE, MIN_FRAME, Frame, cell_len, delays
from tests.inspect.conftest import ROOT, evolve

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.tmux]


def _ok_individual(run: Path) -> str:
    import duckdb

    with duckdb.connect(str(run / "store.duckdb"), read_only=True) as con:
        row = con.execute("SELECT individual_id FROM evaluations WHERE status = 'ok' ORDER BY individual_id").fetchone()
    assert row is not None
    return str(row[0])


def test_replay_to_a_pipe_prints_plain_frames_with_running_metrics(tower_run: Path) -> None:
    ind = _ok_individual(tower_run)
    r = evolve("replay", str(tower_run), ind, "--session", "h2_writer", "--from", "3")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout  # not a terminal: no escape sequences
    frames = [f for f in r.stdout.split("=== ") if f]
    n = len(frames)
    assert frames[0].startswith(f"frame 1/{n}  h2_writer #3 ")
    assert "python3 h1.py" in frames[-1] and "syntax_ratio" in frames[-1] and f"frame {n}/{n} " in frames[-1]


def test_pace_holds_bursts_and_compresses_idle_time() -> None:
    frames = [Frame("h1_writer", k, "text", "x", t, "", k, 0.0, 0, 1.0) for k, t in
              enumerate([100.0, 100.001, 110.0, 110.5], 1)]
    assert [w for w, _ in delays(frames)] == [0.0, MIN_FRAME, MAX_IDLE, 0.5]
    assert [round(w, 6) for w, _ in delays(frames, speed=2, max_idle=1, min_frame=0)] == [0.0, 0.0005, 0.5, 0.25]


def test_asciicast_export_is_accepted_by_asciinema(tower_run: Path, short_tmp: Path) -> None:
    ind = _ok_individual(tower_run)
    cast = short_tmp / "out.cast"
    r = evolve("replay", str(tower_run), ind, "--speed", "200", "--export", str(cast))
    assert r.returncode == 0, r.stderr
    lines = cast.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["width"] >= 80
    events = [json.loads(line) for line in lines[1:]]
    times = [e[0] for e in events]
    assert times == sorted(times) and len(times) > 50
    for k, (_t, _kind, data) in enumerate(events, 1):  # every frame fits the terminal it declares
        shown = data.split("\x1b[H\x1b[2J", 1)[1].split("\r\n")
        assert shown[0].startswith(f"frame {k}/{len(events)} ") and len(shown) <= header["height"]
        assert max(cell_len(line) for line in shown) <= header["width"]
    assert "avg_interval –" in events[0][2] and "inf" not in cast.read_text()  # one key: not measurable yet
    # The real player needs a terminal: run it in a private tmux server.
    asciinema = shutil.which("asciinema")
    assert asciinema, "asciinema is installed by the test set-up"
    sock = str(short_tmp / "t.sock")
    script = (f"{asciinema} cat {cast} > {short_tmp}/cat.txt; echo cat=$? > {short_tmp}/rc; "
              f"{asciinema} play -s 200 -i 0.05 {cast} > /dev/null; echo play=$? >> {short_tmp}/rc")
    subprocess.run(["tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50",
                    "bash", "-c", script], check=True)
    try:
        deadline = time.monotonic() + 120
        while "play=" not in _read(short_tmp / "rc") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, check=False)
    assert _read(short_tmp / "rc").split() == ["cat=0", "play=0"]
    assert "python3 h1.py" in (short_tmp / "cat.txt").read_text(errors="replace")


def test_interactive_replay_pauses_steps_and_quits(tower_run: Path, short_tmp: Path) -> None:
    """In a real terminal (a private tmux server): frame k/N shown, space pauses, n and ← step,
    q quits; every line fits the pane."""
    ind = _ok_individual(tower_run)
    sock, rc = str(short_tmp / "i.sock"), short_tmp / "i.rc"
    command = (f"cd {ROOT} && {sys.executable} -m evolve.cli replay {tower_run} {ind} --session h2_writer "
               f"--min-frame 1; echo rc=$? > {rc}")
    subprocess.run(["tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-x", "90", "-y", "20",
                    "bash", "-c", command], check=True)

    def pane() -> str:
        return subprocess.run(["tmux", "-S", sock, "capture-pane", "-p"], capture_output=True, text=True,
                              check=False).stdout

    def wait_for(pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = re.search(pattern, pane())
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never showed; the pane:\n{pane()}")

    def press(key: str) -> None:
        subprocess.run(["tmux", "-S", sock, "send-keys", key], check=True)

    try:
        wait_for(r"frame \d+/\d+  h2_writer")
        press("Space")
        shown = wait_for(r"frame (\d+)/(\d+) .*\n.*paused")
        k, n = int(shown.group(1)), int(shown.group(2))
        assert n > 3 and k < n
        press("n")
        wait_for(rf"frame {k + 1}/{n} ")
        press("Left")
        wait_for(rf"frame {k}/{n} ")
        time.sleep(1.5)  # paused past a frame's time: still the same frame
        assert f"frame {k}/{n} " in pane()
        assert all(len(line) <= 90 for line in pane().splitlines())
        press("q")
        deadline = time.monotonic() + 30
        while "rc=" not in _read(rc) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _read(rc).strip() == "rc=0"
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, check=False)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_trajectory_checkout_is_a_plain_clone(tower_run: Path, short_tmp: Path) -> None:
    ind = _ok_individual(tower_run)
    dest = short_tmp / "clone"
    r = evolve("trajectory", str(tower_run), ind, "--checkout", str(dest))
    assert r.returncode == 0, r.stderr
    log = subprocess.run(["git", "-C", str(dest), "log", "-p", "--format=%s"], capture_output=True, text=True,
                         check=True).stdout
    assert "h2_writer: cat > h1.py" in log and "Keys: " not in log.split("\n")[0]
    assert (dest / "h1.py").exists()


@pytest.mark.parametrize("args, message", [
    (["replay", "no-such-run", "x"], "no run 'no-such-run'"),
    (["replay", "{run}", "no-such-individual"], "no individual 'no-such-individual'"),
    (["replay", "{run}", "{ind}", "--speed", "0"], "--speed must be positive"),
    (["replay", "{run}", "{ind}", "--session", "h9_writer"], "unknown session 'h9_writer'"),
    (["trajectory", "{run}", "{ind}", "--checkout", "{nonempty}"], "exists and is not empty"),
])
def test_bad_input_is_one_line(tower_run: Path, args: list[str], message: str) -> None:
    ind = _ok_individual(tower_run)
    argv = [a.format(run=tower_run, ind=ind, nonempty=tower_run) for a in args]
    r = evolve(*argv)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_missing_or_corrupt_trajectory_is_named(tower_run: Path, short_tmp: Path) -> None:
    copy = short_tmp / "run"
    shutil.copytree(tower_run, copy)
    ind = _ok_individual(copy)
    traj = copy / "trajectories" / ind
    shutil.rmtree(traj / ".git" / "objects")
    (traj / ".git" / "objects").mkdir()
    r = evolve("replay", str(copy), ind)
    assert r.returncode == 2 and "trajectory" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    shutil.rmtree(traj)
    r = evolve("replay", str(copy), ind)
    assert r.returncode == 2 and "is missing" in r.stderr, r.stderr
