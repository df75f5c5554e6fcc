"""Joining a Ray cluster started with `ray start`: a two-node cluster on this machine (loopback,
1 CPU per node, token authentication as Ray starts it by default) takes `evolve run --address`
with only the token in the environment and spreads the evaluator actors over both nodes (a
front member's replicate runs on the node its first sample did not); a
wrong token, or an address where no cluster listens, is one line and no run."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from evolve.store import Store
from tests.evolve.conftest import REPO, cli, cli_env, joiner_env, stop_group, write_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def two_nodes(two_nodes_procs: tuple[str, list[subprocess.Popen[bytes]]]) -> str:
    return two_nodes_procs[0]


def _config(path: Path) -> Path:
    return write_config(path, {
        "name": "cluster", "seed": 4, "generations": 3,
        "species": {"name": "numeric", "params": {"problem": "zdt1", "n_var": 8}},
        "population": {"size": 10},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
        "evaluation": {"timeout": 30, "actors": 2, "replicates": 2}})


def _refused(config: Path, tmp_path: Path, *tries: tuple[str, dict[str, str]]) -> list[str]:
    """`evolve run --address` tries that must each fail (side by side): their one lines. A hang
    fails at the timeout."""
    runs = [tmp_path / f"runs{k}" for k in range(len(tries))]
    procs = [subprocess.Popen(cli("run", str(config), "--runs", str(r), "--address", address, "--quiet"),
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r, (address, env) in zip(runs, tries)]
    lines = []
    for r, proc in zip(runs, procs):
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert err.count("\n") == 1 and err.startswith("evolve: error: "), err
        assert not r.exists()  # checked before anything was created: no run to list as running
        lines.append(err)
    return lines


def test_evaluations_run_on_both_nodes(two_nodes: str, tmp_path: Path) -> None:
    config = _config(tmp_path / "c.yaml")
    proc = subprocess.Popen(cli("run", str(config), "--runs", str(tmp_path / "runs"), "--run-id", "c",
                                "--address", two_nodes),
                            cwd=REPO, env=joiner_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=240)
    finally:
        stop_group(proc)
    assert proc.returncode == 0, output
    assert "Pareto front of c" in output
    assert "token authentication (token from RAY_AUTH_TOKEN)" in " ".join(output.split())
    with Store.open(tmp_path / "runs" / "c", read_only=True) as store:
        per_node = dict(store.query("SELECT node, count(*) FROM evaluations GROUP BY node"))
        assert store.query("SELECT count(*) FROM evaluations")[0][0] == 30
        # front members evaluated again: each replicate on the other node than the first sample's
        same_node = [same for (same,) in store.query(
            "SELECT r.node = e.node FROM replicates r JOIN evaluations e USING (run_id, individual_id)")]
    assert len(per_node) == 2, per_node
    assert same_node and not any(same_node), same_node
    assert all(len(node) == 56 for node in per_node)  # Ray node ids (hex)

    wrong, off = _refused(config, tmp_path, (two_nodes, joiner_env(RAY_AUTH_TOKEN="0" * 32)),
                          (two_nodes, cli_env()))  # cli_env: RAY_AUTH_MODE=disabled
    assert f"the Ray cluster at {two_nodes}" in wrong and "refused the token from RAY_AUTH_TOKEN" in wrong
    assert "requires token authentication but RAY_AUTH_MODE=disabled" in off


def test_no_cluster_at_the_address_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evolve.cli import main

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config, runs = _config(tmp_path / "c.yaml"), tmp_path / "runs"
    for address, says in ((f"127.0.0.1:{port}", f"no Ray cluster at 127.0.0.1:{port}: nothing listens on"),
                          ("http://127.0.0.1:8265", "is a Ray dashboard address (what `ray job submit` takes)")):
        assert main(["run", str(config), "--runs", str(runs), "--address", address, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("evolve: error: ") and says in err, err
        assert not runs.exists()  # checked before anything was created: no run to list as running


def test_a_run_that_never_started_is_stored_failed(tmp_path: Path) -> None:
    """What `evolve run` does when the driver stops before the engine ran (Ray refused late,
    a pool never came up): the run is `failed`, with the reason, not `running` for ever."""
    from evolve.config import load_config, resolve
    from evolve.errors import EvolveError
    from evolve.runs import create_run, mark_failed

    config = _config(tmp_path / "c.yaml")
    run_id, run_dir = create_run(resolve(load_config(config)), tmp_path / "runs")
    mark_failed(run_dir, run_id, EvolveError("cannot start or reach the Ray cluster at x: gone\nmore"))
    with Store.open(run_dir, read_only=True) as store:
        assert store.run()["status"] == "failed"
        assert store.query("SELECT kind, message FROM events ORDER BY event_id DESC LIMIT 1")[0] == (
            "run_failed", f"run {run_id} failed before it started: cannot start or reach the Ray cluster at x: gone")
