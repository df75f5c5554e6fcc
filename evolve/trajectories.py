"""What evaluations send back from the cluster, kept under the run directory.

Trajectory repositories come as `git bundle` bytes and are unpacked under
`RUN_DIR/trajectories/<individual_id>/` as ordinary git repositories (work tree at the last
commit), so replay works after the cluster is gone. Other files (an accordion checkpoint)
are written under `RUN_DIR/artifacts/<individual_id>/`.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

GIT_TIMEOUT = 120.0

TRAJECTORY_DIR = "trajectories"
ARTIFACT_DIR = "artifacts"


def unpack_bundle(data: bytes, run_dir: Path, individual_id: str) -> str:
    """Clone the bundle into the run directory; returns the path relative to `run_dir`.

    Raises OSError (with git's message) when the bundle cannot be unpacked.
    """
    root = (run_dir / TRAJECTORY_DIR).resolve()  # git runs in root: relative paths would break
    root.mkdir(parents=True, exist_ok=True)
    dest = root / individual_id
    if dest.exists():  # left by a driver killed before it recorded the evaluation
        shutil.rmtree(dest)
    bundle = root / f".{individual_id}.bundle"
    bundle.write_bytes(data)
    try:
        # A link a harness recorded is checked out as a plain file naming its target (never
        # followed by whoever opens the run directory later).
        _git(["clone", "--quiet", "-c", "core.symlinks=false", str(bundle), str(dest)], cwd=root)
        _git(["remote", "remove", "origin"], cwd=dest)
    finally:
        bundle.unlink(missing_ok=True)
    return f"{TRAJECTORY_DIR}/{individual_id}"


def _git(args: list[str], cwd: Path) -> None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        raise OSError(f"git {args[0]} did not finish within {GIT_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        raise OSError(f"git {args[0]} failed: {(proc.stderr or proc.stdout).strip()[:300]}")


def keep_artifacts(files: dict[str, bytes], run_dir: Path, individual_id: str) -> str:
    """Write `files` (plain names -> bytes) under the run directory, each atomically; returns
    the folder relative to `run_dir`."""
    dest = run_dir / ARTIFACT_DIR / individual_id
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if not name or "/" in name or name.startswith("."):
            raise OSError(f"refusing artifact name {name!r} (a plain file name is expected)")
        tmp = dest / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(dest / name)
    return f"{ARTIFACT_DIR}/{individual_id}"
