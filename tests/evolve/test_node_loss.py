"""Losing the worker node of a two-node Ray cluster mid-run: the run completes on the head
node with every individual evaluated exactly once and nothing stored as lost."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from evolve.store import Store
from tests.evolve.conftest import REPO, cli, joiner_env, stop_group, write_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_worker_node_killed_mid_run(two_nodes_procs: tuple[str, list[subprocess.Popen[bytes]]],
                                    tmp_path: Path) -> None:
    address, procs = two_nodes_procs
    population, generations = 6, 4
    config = write_config(tmp_path / "c.yaml", {
        "name": "nodeloss", "seed": 5, "generations": generations,
        "species": {"name": "tests.evolve.slow_species:SlowNumeric",
                    "params": {"problem": "zdt1", "n_var": 6, "delay": 1.0}},
        "population": {"size": population},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
        "evaluation": {"timeout": 20, "actors": 2, "retries": 3, "grace": 10}})
    run_dir = tmp_path / "runs" / "n"
    proc = subprocess.Popen(cli("run", str(config), "--out", str(tmp_path / "runs"), "--run-id", "n",
                                "--address", address, "--quiet"),
                            cwd=REPO, env=joiner_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # wait until the run is busy in generation 1
            status = _status(run_dir)
            if status.get("generation", 0) >= 1 and status.get("evaluated", 0) >= 1:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the run ended before the node could be killed"
        stop_group(procs[1], grace=2.0)  # the worker node goes away with the actor on it
        output, _ = proc.communicate(timeout=300)
    finally:
        stop_group(proc)
    assert proc.returncode == 0, output
    with Store.open(run_dir, read_only=True) as store:
        total, distinct = store.query("SELECT count(*), count(DISTINCT individual_id) FROM evaluations")[0]
        statuses = dict(store.query("SELECT status, count(*) FROM evaluations GROUP BY status"))
        retried = store.query("SELECT count(*) FROM evaluations WHERE attempts > 1")[0][0]
        events = [k for (k,) in store.query("SELECT kind FROM events")]
    assert total == distinct == population * generations
    assert statuses == {"ok": population * generations}, statuses
    assert retried >= 1 and "actor_died" in events


def _status(run_dir: Path) -> dict[str, object]:
    try:
        return dict(json.loads((run_dir / "status.json").read_text()))
    except (OSError, ValueError):
        return {}
