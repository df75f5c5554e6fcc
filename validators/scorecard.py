"""Every metric of a trajectory at once, as one flat dictionary keyed `metric@label`.

Per-rank metrics (`avg_interval`, `max_diff_len`, `syntax_ratio`, `idle_keys`, `commits`)
are keyed by rank label (`syntax_ratio@h2`); level metrics by level (`code_bytes@h1`);
tower-wide ones and the constraints by name (`task_correct`, `keys_audit`, `self_read`,
`untyped_chars`, `tamper`).

>>> result = score("tmux_outputs")                            # doctest: +SKIP
>>> result["depth"], result["metrics"]["syntax_ratio@h2"], result["metrics"]["tamper"]  # doctest: +SKIP
(3, 0.97, 0)
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from validators import (
    avg_interval,
    bytes_convergence,
    bytes_ratio,
    code_bytes,
    edit_distance,
    idle_keys,
    keys_audit,
    max_diff_len,
    self_read,
    syntax_ratio,
    tamper,
    task_correct,
    untyped_chars,
)
from validators.trailers import label_of
from validators.trajectory import Commit, Trajectory

Value = float | int | None


def rank_labels(traj: Trajectory) -> dict[str, tuple[Commit, ...]]:
    """Label -> commits: `h1`..`hN` always (empty when that writer never typed), then every
    other session under its own name; a label two sessions would share goes to `h{n}_writer`."""
    sessions = sorted(traj.sessions, key=lambda s: label_of(s) == s)  # writers first
    out: dict[str, tuple[Commit, ...]] = {f"h{n}": () for n in range(1, traj.depth + 1)}
    taken: set[str] = set()
    for session in sessions:
        label = label_of(session)
        if label in taken:
            label = session
        taken.add(label)
        out[label] = traj.commits_of(session)
    return dict(sorted(out.items(), key=lambda kv: _rank_key(kv[0])))


def _rank_key(label: str) -> tuple[int, int, str]:
    match = re.fullmatch(r"h([0-9]+)", label)
    return (0, int(match.group(1)), "") if match else (1, 0, label)


def score_trajectory(traj: Trajectory) -> dict[str, Any]:
    """`score()` on an already open trajectory (raises `NotATrajectoryError` as score does)."""
    traj.require_trajectory()
    metrics: dict[str, Value] = {}
    for label, commits in rank_labels(traj).items():
        metrics[f"avg_interval@{label}"] = avg_interval.measure(commits)
        metrics[f"max_diff_len@{label}"] = max_diff_len.measure(traj, commits)
        metrics[f"syntax_ratio@{label}"] = syntax_ratio.measure(traj, commits)
        metrics[f"idle_keys@{label}"] = idle_keys.measure(traj, commits)
        metrics[f"commits@{label}"] = len(commits)
    sizes = code_bytes.compute(traj)
    ratios = bytes_ratio.ratios(sizes)
    metrics.update({f"code_bytes@h{n}": v for n, v in sizes.items()})
    metrics.update({f"bytes_ratio@h{n}": v for n, v in ratios.items()})
    metrics.update({f"edit_distance@h{n}": v for n, v in edit_distance.compute(traj).items()})
    metrics["bytes_convergence"] = bytes_convergence.converge(ratios, traj.depth)
    metrics["task_correct"] = task_correct.compute(traj)
    metrics["keys_audit"] = keys_audit.compute(traj)
    metrics["self_read"] = self_read.compute(traj)
    metrics["untyped_chars"] = untyped_chars.compute(traj)
    metrics["tamper"] = tamper.compute(traj)
    return {"depth": traj.depth, "sessions": list(traj.sessions), "metrics": metrics}


def score(repo: str | Path) -> dict[str, Any]:
    """Score a trajectory repository: `{"depth": N, "sessions": [...], "metrics": {...}}`.

    Per-rank metrics are keyed by label (`syntax_ratio@h2`); a writer `h1..hN` that made no
    commit still appears, with `commits@hn` 0 (`avg_interval` inf, `max_diff_len` 0,
    `syntax_ratio` None, `idle_keys` 0). Raises `ValidatorError` for a missing, empty or
    non-git path, and `NotATrajectoryError` for a repository whose root commit is not `init`
    with a `.tower/manifest.json` (its metrics would be meaningless zeros).
    """
    with Trajectory.open(repo, prefetch=True) as traj:
        return score_trajectory(traj)
