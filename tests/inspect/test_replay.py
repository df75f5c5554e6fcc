"""Replay and trajectory export on a real run's store, after the cluster is gone."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.inspect.conftest import evolve

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.tmux]


def _ok_individual(run: Path) -> str:
    import duckdb

    with duckdb.connect(str(run / "store.duckdb"), read_only=True) as con:
        row = con.execute("SELECT individual_id FROM evaluations WHERE status = 'ok' ORDER BY individual_id").fetchone()
    assert row is not None
    return str(row[0])


def test_replay_plays_frames_with_running_metrics(tower_run: Path) -> None:
    ind = _ok_individual(tower_run)
    r = evolve("replay", str(tower_run), ind, "--session", "h2_writer", "--speed", "1000", "--from", "3")
    assert r.returncode == 0, r.stderr
    headers = [line for line in r.stdout.split("\x1b[2J\x1b[H") if line]
    assert headers[0].startswith("h2_writer #3 ")
    assert "python3 h1.py" in headers[-1] and "syntax_ratio" in headers[-1]


def test_asciicast_export_is_accepted_by_asciinema(tower_run: Path, short_tmp: Path) -> None:
    ind = _ok_individual(tower_run)
    cast = short_tmp / "out.cast"
    r = evolve("replay", str(tower_run), ind, "--speed", "200", "--export", str(cast))
    assert r.returncode == 0, r.stderr
    lines = cast.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["width"] >= 80
    times = [json.loads(line)[0] for line in lines[1:]]
    assert times == sorted(times) and len(times) > 50
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
