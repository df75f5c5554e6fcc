"""Fixtures for the engine tests: run configs, slow species, subprocess helpers, a two-node Ray cluster."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for `python -m evolve.cli` subprocesses (repo importable, no telemetry)."""
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                "PYTHONUNBUFFERED": "1"})
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "evolve.cli", *args]


def stop_group(proc: subprocess.Popen[Any], *, grace: float = 10.0) -> None:
    """SIGTERM a subprocess's whole process group (it was started in its own session), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                proc.poll()
                return
            proc.poll()
            time.sleep(0.2)


def write_config(path: Path, data: Mapping[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(dict(data), sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def slow_species_by_value() -> Iterator[None]:
    """Let Ray workers unpickle the test-only species without importing this directory."""
    import ray.cloudpickle

    from tests.evolve import slow_species

    ray.cloudpickle.register_pickle_by_value(slow_species)
    yield
    ray.cloudpickle.unregister_pickle_by_value(slow_species)


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


# The two-node cluster asks for a token, as `ray start --head` does by default since Ray 2.59
# when one is found; given in the environment, so no test writes ~/.ray/auth_token.
CLUSTER_TOKEN = secrets.token_hex(16)


def joiner_env(**extra: str) -> dict[str, str]:
    """Environment of a process joining the two-node cluster as a user would: the token
    available (RAY_AUTH_TOKEN), RAY_AUTH_MODE not set."""
    env = cli_env(**{"RAY_AUTH_TOKEN": CLUSTER_TOKEN, **extra})
    env.pop("RAY_AUTH_MODE")
    return env


@pytest.fixture
def two_nodes_procs(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """(address, [head process, worker process]) of a two-node loopback cluster with token
    authentication (join it with `joiner_env()`)."""
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
                procs.append(subprocess.Popen([RAY, "start", *args, *common], cwd=REPO,
                                              env=cli_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=CLUSTER_TOKEN),
                                              stdout=fh, stderr=subprocess.STDOUT, start_new_session=True))
            _started(log, procs[-1])
        yield f"127.0.0.1:{port}", procs
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        shutil.rmtree(temp, ignore_errors=True)
