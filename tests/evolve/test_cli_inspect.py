"""`evolve status` / `evolve fronts` while a driver holds the store, and on bad paths."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolve.cli import main
from evolve.config import parse_config, resolve
from evolve.loop import STATUS_FILE
from evolve.runs import create_run
from tests.evolve.conftest import REPO


@pytest.fixture
def held_run(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A run whose store another process holds, with the status file its driver would write."""
    resolved = resolve(parse_config({"name": "t", "generations": 3, "population": {"size": 4},
                                     "species": {"name": "numeric"},
                                     "objectives": [{"metric": "f1"}, {"metric": "f2"}]}))
    _, run_dir = create_run(resolved, tmp_path / "runs", run_id="live")
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir / "store.duckdb")],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    (run_dir / STATUS_FILE).write_text(json.dumps({
        "run_id": "live", "pid": holder.pid, "state": "running", "generation": 1, "generations": 3,
        "species": "numeric", "evaluated": 2, "size": 4, "failed": 1, "hypervolume": 0.25,
        "updated_at": "2026-01-01T00:00:00+00:00"}))
    yield run_dir, holder.pid
    holder.kill()
    holder.wait(timeout=10)


def test_status_of_a_live_run_reads_the_drivers_snapshot(held_run: tuple[Path, int],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, pid = held_run
    assert main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"PID {pid}" in out and "1 of 3 done" in out and "2 of 4 evaluated, 1 failed" in out
    assert main(["status", "--out", str(run_dir.parent)]) == 0
    assert "live" in capsys.readouterr().out


def test_fronts_of_a_locked_store_is_one_clear_line(held_run: tuple[Path, int],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, pid = held_run
    assert main(["fronts", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("evolve: error: ")
    assert f"locked by another process (PID {pid})" in err


def test_unknown_runs_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fronts", str(tmp_path / "nope")]) == 2
    assert "no run" in capsys.readouterr().err
    assert main(["status", "--out", str(tmp_path / "none")]) == 2
    assert "no runs directory" in capsys.readouterr().err
