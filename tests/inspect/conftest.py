"""A real (small) tower run, made once per test session through the `evolve run` CLI."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tower_run() -> Iterator[Path]:
    """The quickstart config, shrunk: 4 individuals, 2 generations, depth 2."""
    tmp = Path(tempfile.mkdtemp(prefix="he-run-", dir="/tmp"))
    tmp.chmod(0o755)
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config["population"]["size"] = 4
    config["generations"] = 2
    (tmp / "small.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(tmp / "small.yaml"), "--out",
                           str(tmp / "runs"), "--run-id", "small", "--quiet"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    try:
        yield tmp / "runs" / "small"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def evolve(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, check=False)
