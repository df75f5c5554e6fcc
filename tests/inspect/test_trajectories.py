"""Trajectory bundles unpack under the run directory, whatever the working directory."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from evolve.trajectories import unpack_bundle


def test_unpack_bundle_with_a_relative_run_dir(git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (git_repo / "h1.py").write_text("print('x')\n")
    subprocess.run(["git", "-C", str(git_repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(git_repo), "commit", "-qm", "init"], check=True)
    bundle = tmp_path / "b.bundle"
    subprocess.run(["git", "-C", str(git_repo), "bundle", "create", str(bundle), "--all"], check=True,
                   capture_output=True)
    monkeypatch.chdir(tmp_path)
    rel = unpack_bundle(bundle.read_bytes(), Path("runs/r1"), "g000-000")
    assert rel == "trajectories/g000-000"
    assert (tmp_path / "runs/r1/trajectories/g000-000/h1.py").read_text() == "print('x')\n"
