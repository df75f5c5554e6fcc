"""Standalone scorers over a trajectory git repository (SPEC §4).

Each metric is a module with `compute(traj[, session])` and a command line
(`python -m validators.syntax_ratio REPO h2_writer`); `score()` runs them all over one
parsed history (`python -m validators REPO` prints it as JSON).

>>> import validators
>>> validators.score("tmux_outputs")["metrics"]["task_correct"]   # doctest: +SKIP
1
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from validators.errors import (
    NotATrajectoryError,
    RepositoryError,
    UnknownSessionError,
    ValidatorError,
)
from validators.trajectory import Trajectory

if TYPE_CHECKING:
    from validators.scorecard import score, score_trajectory

__all__ = ["NotATrajectoryError", "RepositoryError", "Trajectory", "UnknownSessionError",
           "ValidatorError", "score", "score_trajectory"]


def __getattr__(name: str) -> Any:
    # Lazy: `python -m validators.<metric>` must not import the metric modules twice.
    if name in ("score", "score_trajectory"):
        return getattr(importlib.import_module("validators.scorecard"), name)
    raise AttributeError(f"module 'validators' has no attribute {name!r}")
