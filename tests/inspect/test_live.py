"""Reading a run while it writes: a real `evolve run` in the background, held in generation 1
(its species waits for a gate file), answers `status`, `fronts`, `sql` and `export` from the
copy its driver published after generation 0 — then finishes, and the copy is gone."""
from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from evolve.cli import main
from evolve.errors import EvolveError
from evolve.store import READ_COPY, Store
from tests.inspect.conftest import ROOT

pytestmark = pytest.mark.slow


def test_read_commands_answer_while_the_run_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    gate, runs = tmp_path / "gate", tmp_path / "runs"
    rid = "live-" + "a-run-id-longer-than-a-status-column-would-fit" * 2  # printed whole, never cut
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({
        "name": "live", "seed": 3, "generations": 3,
        "species": {"name": "tests.inspect.gated_species:GatedNumeric",
                    "params": {"problem": "zdt1", "n_var": 6, "gate": str(gate)}},
        "population": {"size": 6},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
        "evaluation": {"timeout": 30, "actors": 0}}))
    run = subprocess.Popen([sys.executable, "-m", "evolve.cli", "run", str(config), "--runs", str(runs),
                            "--run-id", rid, "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None:  # until generation 0 is published
            if _published(runs / rid) == 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"generation 0 was never published: {run.poll()=}")

        status, fronts, sql, listing, export = _together(
            ["status", "--runs", str(runs), rid],
            ["fronts", "--runs", str(runs), rid, "--format", "csv"],
            ["sql", str(runs / rid), "SELECT max(generation) AS g, count(*) AS n FROM evaluations"],
            ["status", "--out", str(runs)],  # the old spelling of --runs still works
            ["export", "--runs", str(runs), rid, "--parquet", str(tmp_path / "parquet")])
        assert run.poll() is None, "the run ended while it was being read"  # held at the gate all along
    finally:
        gate.touch()
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output

    for got in (status, fronts, sql, listing, export):
        assert got.returncode == 0, got.stderr
    for got in (fronts, sql, export):  # each says what it read (report and replay open it the same way)
        assert got.stderr.startswith("live: generation 0 (the copy its running driver published"), got.stderr
    assert "evaluations.parquet  (6 rows)" in export.stderr
    assert "live: generation 0 (the copy its running driver published" in status.stdout
    assert "1 of 3 committed" in status.stdout and "now: generation 1 under way" in status.stdout
    assert fronts.stdout.startswith("species,individual_id")
    assert {line.split(",")[2] for line in fronts.stdout.splitlines()[1:]} == {"0"}
    assert re.search(r"│\s+0\s+│\s+6\s+│", sql.stdout), sql.stdout  # DuckDB's table: generation 0, 6 rows
    assert "running (live, PID" in listing.stdout and rid in listing.stdout and f"run {rid}" in status.stdout

    # finished: the store itself is read again, and the copy is gone
    assert not (runs / rid / READ_COPY).exists()
    with Store.open(runs / rid, read_only=True) as store:
        assert not store.live and store.run()["status"] == "finished"

    # `evolve sql RUN` alone: statements from stdin, one over two lines, a bad one said in one
    # line without stopping the rest; piped input that had a failure exits 2
    monkeypatch.setattr(sys, "stdin", io.StringIO("SELECT count(*) AS n\nFROM generations;\nSELECT nope;\n"
                                                  "SELECT status FROM runs;\n"))
    assert main(["sql", "--runs", str(runs), rid, "--format", "csv"]) == 2
    out, err = capsys.readouterr()
    assert out.split() == ["n", "3", "status", "finished"]
    assert err.count("\n") == 1 and err.startswith("evolve: error: SQL: Binder Error")


def _published(run_dir: Path) -> int | None:
    """The last generation a reader sees in the run's published copy (None: nothing yet)."""
    try:
        with Store.open(run_dir, read_only=True) as store:
            return store.last_generation(store.run()["run_id"]) if store.live else None
    except EvolveError:  # not created yet, or held with nothing published yet
        return None


def _together(*commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """`evolve` commands run side by side (readers of one live run at the same time)."""
    procs = [subprocess.Popen([sys.executable, "-m", "evolve.cli", *c], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in commands]
    done = []
    for c, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(c, proc.returncode, out, err))
    return done
