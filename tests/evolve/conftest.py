"""Fixtures for the engine tests: run configs, slow species, subprocess helpers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
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
