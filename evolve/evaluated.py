"""The driver's record of one evaluation.

An actor's reply (`populations.base.Outcome`) may carry megabytes: a tower's trajectory as
`git bundle` bytes, an accordion's checkpoint. The driver reads each reply once: the
trajectory is unpacked and the files written under the run directory
(`evolve.trajectories`), and what it keeps — stages, stores, hands to `score` — is an
`Evaluated`, which holds their paths and sizes instead of their bytes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from populations.base import Outcome

# (kind, message, individual_id): where a reply's trajectory or files could not be kept
LostSink = Callable[[str, str, str], None]


# Not frozen: a frozen dataclass pays an object.__setattr__ per field (3.3 µs instead of
# 0.7 µs a record, 10,000 records in a ZDT1 run); nothing changes a record once received.
@dataclass(slots=True)
class Evaluated:
    individual_id: str
    status: str  # ok | failed | timeout | invalid
    metrics: dict[str, float | int | None]
    error: str | None
    wall_seconds: float
    node: str
    attempts: int
    isolation: str | None  # the sandbox isolation a tower ran under
    trajectory: str | None = None  # where the bundle was unpacked, relative to the run directory
    artifact: str | None = None  # where the files were written, relative to the run directory
    result_bytes: int = 0  # bundle and file bytes that travelled back through Ray
    tasks: list[dict[str, Any]] | None = None  # per task (a tower's `harness_tower.sample.TaskResult`)
    reused_from: str | None = None  # an earlier individual with the same genome and context: its result
    reference: float | None = None  # the evaluator's reference seconds (evolve.calibrate)


def receive(outcome: Outcome, run_dir: Path, lost: LostSink) -> Evaluated:
    """The record of `outcome`, its trajectory and files written under `run_dir`. A
    trajectory or file that cannot be written is reported to `lost` and left out; the
    evaluation itself is kept."""
    trajectory = artifact = None
    result_bytes = 0
    if outcome.bundle is not None or outcome.artifacts:  # nothing to write (numeric): skip the imports
        from evolve.trajectories import keep_artifacts, unpack_bundle

        ind = outcome.individual_id
        if outcome.bundle is not None:
            result_bytes += len(outcome.bundle)
            try:
                trajectory = unpack_bundle(outcome.bundle, run_dir, ind)
            except OSError as exc:
                lost("trajectory_lost", f"{ind}: {exc}", ind)
        if outcome.artifacts:
            result_bytes += sum(len(b) for b in outcome.artifacts.values())
            try:
                artifact = keep_artifacts(outcome.artifacts, run_dir, ind)
            except OSError as exc:
                lost("artifact_lost", f"{ind}: {exc}", ind)
    return Evaluated(outcome.individual_id, outcome.status, outcome.metrics, outcome.error,
                     float(outcome.wall_seconds), outcome.node, outcome.attempts, outcome.isolation,
                     trajectory, artifact, result_bytes, outcome.tasks, reference=outcome.reference)
