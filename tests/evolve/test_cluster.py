"""A two-node Ray cluster on this machine (loopback, 1 CPU per node): `evolve run --address`
spreads the evaluator actors over both nodes; the cluster is torn down afterwards."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolve.store import Store
from tests.evolve.conftest import REPO, cli, cli_env, stop_group, write_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _started(log: Path, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise AssertionError(f"ray start did not report 'Ray runtime started' within {timeout:.0f}s")


@pytest.fixture
def two_nodes(two_nodes_procs: tuple[str, list[subprocess.Popen[bytes]]]) -> str:
    return two_nodes_procs[0]


@pytest.fixture
def two_nodes_procs(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """(address, [head process, worker process]) of a two-node loopback cluster."""
    temp = Path(tempfile.mkdtemp(prefix="he-r", dir="/tmp"))  # short: Ray's socket paths
    port = _free_port()
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp),
              "--disable-usage-stats", "--block"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in (("head", ["--head", "--port", str(port), "--include-dashboard", "false"]),
                           ("worker", ["--address", f"127.0.0.1:{port}"])):
            log = tmp_path / f"{name}.log"
            with log.open("wb") as fh:
                procs.append(subprocess.Popen([RAY, "start", *args, *common], cwd=REPO, env=cli_env(),
                                              stdout=fh, stderr=subprocess.STDOUT, start_new_session=True))
            _started(log, procs[-1])
        yield f"127.0.0.1:{port}", procs
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        shutil.rmtree(temp, ignore_errors=True)


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
