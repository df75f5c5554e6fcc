"""A two-node Ray cluster on this machine (loopback, 1 CPU per node): `evolve run --address`
spreads the evaluator actors over both nodes; the cluster is torn down afterwards."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from evolve.store import Store
from tests.evolve.conftest import REPO, cli, cli_env, stop_group, write_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]

@pytest.fixture
def two_nodes(two_nodes_procs: tuple[str, list[subprocess.Popen[bytes]]]) -> str:
    return two_nodes_procs[0]


def test_evaluations_run_on_both_nodes(two_nodes: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {
        "name": "cluster", "seed": 4, "generations": 3,
        "species": {"name": "numeric", "params": {"problem": "zdt1", "n_var": 8}},
        "population": {"size": 10},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
        "evaluation": {"timeout": 30, "actors": 2}})
    proc = subprocess.Popen(cli("run", str(config), "--out", str(tmp_path / "runs"), "--run-id", "c",
                                "--address", two_nodes, "--quiet"),
                            cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=240)
    finally:
        stop_group(proc)
    assert proc.returncode == 0, output
    assert "Pareto front of c" in output
    with Store.open(tmp_path / "runs" / "c", read_only=True) as store:
        per_node = dict(store.query("SELECT node, count(*) FROM evaluations GROUP BY node"))
        assert store.query("SELECT count(*) FROM evaluations")[0][0] == 30
    assert len(per_node) == 2, per_node
    assert all(len(node) == 56 for node in per_node)  # Ray node ids (hex)
