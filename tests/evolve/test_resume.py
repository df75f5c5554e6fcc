"""SIGKILL the driver mid-run, then `--resume`: nothing lost, nothing stored twice, and the
resumed run is the very run an uninterrupted driver would have made."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from evolve.config import parse_config, resolve
from evolve.loop import run_evolution
from evolve.runs import create_run
from evolve.store import Store
from tests.evolve.conftest import REPO, cli, cli_env, stop_group, write_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]

POP, GENS = 6, 4


def _config(delay: float) -> dict[str, Any]:
    return {"name": "resume", "seed": 13, "generations": GENS,
            "species": {"name": "tests.evolve.slow_species:SlowNumeric",
                        "params": {"delay": delay, "problem": "zdt1", "n_var": 6}},
            "population": {"size": POP},
            "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
            "evaluation": {"timeout": 60, "actors": 2}, "ray": {"num_cpus": 2}}


def _wait_for(path: Path, proc: subprocess.Popen[str], ok: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the driver exited ({proc.returncode}) before it could be killed")
        try:
            data = json.loads(path.read_text())
            if ok(data):
                return dict(data)
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach the wanted state within {timeout:.0f}s")


def _rows(run_dir: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with Store.open(run_dir, read_only=True) as store:
        ind = store.query("SELECT individual_id, generation, hash, parents, seed FROM individuals ORDER BY 1")
        ev = store.query("SELECT individual_id, status, objectives FROM evaluations ORDER BY 1")
    return ind, ev


def test_sigkill_then_resume_loses_nothing_and_repeats_nothing(
        ray_local: object, tmp_path: Path) -> None:
    config = write_config(tmp_path / "resume.yaml", _config(delay=1.5))  # > STAGE_WORTH: staged at once
    out = tmp_path / "runs"
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen(cli("run", str(config), "--out", str(out), "--run-id", "r", "--quiet"),
                              cwd=REPO, env=cli_env(), stdout=log, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        # kill once generation 1 is under way and some of its evaluations are done (and staged)
        _wait_for(out / "r" / "status.json", driver,
                  lambda d: d["generation"] >= 1 and d.get("evaluated", 0) >= 2, timeout=240)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        stop_group(driver)  # the embedded Ray's helpers share the driver's process group
        log.close()

    with Store.open(out / "r", read_only=True) as store:
        staged = store.query("SELECT count(*) FROM staged")[0][0]
        committed = store.last_generation("r")
        assert store.run()["status"] == "running"  # killed, not finished
    assert committed is not None and committed < GENS - 1
    assert staged >= 1, (tmp_path / "driver.log").read_text()

    resumed = subprocess.Popen(cli("run", str(config), "--out", str(out), "--resume", "r", "--quiet"),
                               cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = resumed.communicate(timeout=300)
    finally:
        stop_group(resumed)
    assert resumed.returncode == 0, output
    assert "Pareto front of r" in output

    ind, ev = _rows(out / "r")
    assert len(ind) == len(ev) == POP * GENS
    assert len({r[0] for r in ev}) == len(ev)  # each evaluation stored once
    assert all(status == "ok" for _, status, _ in ev)
    with Store.open(out / "r", read_only=True) as store:
        kinds = [r[0] for r in store.query("SELECT kind FROM events ORDER BY event_id")]
        reused = store.query("SELECT sum(reused) FROM generations")[0][0]
        assert store.run()["status"] == "finished"
        assert store.query("SELECT count(*) FROM staged")[0][0] == 0
    assert "run_resumed" in kinds and "reused" in kinds
    assert reused == staged  # what was evaluated before the kill was kept, not redone

    # the same seed without a kill gives the very same individuals and evaluations
    resolved = resolve(parse_config(_config(delay=0.0)))
    rid, ref_dir = create_run(resolved, tmp_path / "ref", run_id="ref")
    run_evolution(resolved, rid, ref_dir)
    assert _rows(ref_dir) == (ind, ev)


def test_resume_refuses_a_different_config(tmp_path: Path) -> None:
    from evolve.cli import main

    config = write_config(tmp_path / "a.yaml", _config(delay=0.0))
    resolved = resolve(parse_config(_config(delay=0.0)))
    create_run(resolved, tmp_path / "runs", run_id="r")
    other = write_config(tmp_path / "b.yaml", {**_config(delay=0.0), "seed": 14})
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["run", str(other), "--out", str(tmp_path / "runs"), "--resume", "r"]) == 2
    assert err.getvalue() == ("evolve: error: the config differs from the one run r started with "
                              "(seed: 13 then, 14 now); resume with the original config\n")
    with contextlib.redirect_stderr(err):
        assert main(["run", str(config), "--out", str(tmp_path / "runs"), "--resume", "nope"]) == 2
    assert "no run 'nope'" in err.getvalue()
