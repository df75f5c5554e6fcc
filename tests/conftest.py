"""Shared, isolated fixtures: a private tmux server, a temporary git repo, one local Ray."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path (tmux socket paths must stay < 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="he-", dir="/tmp"))
    path.chmod(0o755)  # sandboxed harnesses run unprivileged and must reach their work tree
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tmux_server(short_tmp: Path) -> Iterator[object]:
    """A libtmux server on a private socket with no user config; killed afterwards."""
    import libtmux

    server = libtmux.Server(socket_path=str(short_tmp / "tmux.sock"), config_file="/dev/null")
    try:
        yield server
    finally:
        if server.is_alive():
            server.kill()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """An empty git repository with a fixed identity."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "user.name", "test"], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "user.email", "test@localhost"], check=True)
    return repo


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """One local Ray for the whole test session, with few CPUs and no dashboard."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                   ignore_reinit_error=True, configure_logging=False)
    try:
        yield ctx
    finally:
        ray.shutdown()
