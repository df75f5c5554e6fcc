"""One evaluation: render the top level, run the tower in a sandbox, score its trajectory.

>>> # result = evaluate(TowerGenome(), depth=3, out_dir=Path("out"))   # doctest: +SKIP
>>> # result.status, result.metrics["task_correct"]                      # ('ok', 1)
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness_tower.diagnose import diagnose
from harness_tower.errors import TowerError
from harness_tower.genome import TowerGenome
from harness_tower.render import render
from harness_tower.sandbox import Limits, Sandbox

PLATFORM_VERSION = "0.1.0"
MAX_DEPTH = 8


@dataclass
class EvalResult:
    """What one evaluation produced: status ok|failed|timeout|invalid, metrics and the reason."""

    status: str
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    error: str | None = None
    wall_seconds: float = 0.0
    trajectory: Path | None = None
    node: str = field(default_factory=platform.node)

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "metrics": self.metrics, "error": self.error,
                "wall_seconds": self.wall_seconds, "trajectory": str(self.trajectory) if self.trajectory else None,
                "node": self.node}


def evaluate(genome: TowerGenome, *, depth: int, out_dir: Path, seed: int = 0, timeout: float = 120.0,
             run_id: str = "local", individual_id: str = "local", limits: Limits = Limits(),
             isolation: str = "auto") -> EvalResult:
    """Run a depth-N tower of this genome; never raises for a misbehaving harness."""
    start = time.monotonic()
    out_dir = Path(out_dir)
    if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        return EvalResult("invalid", error=f"depth must be an integer in 1..{MAX_DEPTH}, got {depth!r}")
    try:
        top = render(genome, depth)
    except TowerError as exc:
        return EvalResult("invalid", error=str(exc), wall_seconds=time.monotonic() - start)
    manifest = {"run_id": run_id, "individual_id": individual_id, "genome_hash": genome.hash(),
                "depth": depth, "seed": seed, "prompt": "$ ",
                "task": {"command": genome.task_command, "expected": genome.task_expected},
                "platform_version": PLATFORM_VERSION}
    result = run_tower(top, depth=depth, manifest=manifest, out_dir=out_dir, timeout=timeout, limits=limits,
                       isolation=isolation)
    result.wall_seconds = time.monotonic() - start
    return result


def run_tower(top_source: str, *, depth: int, manifest: dict[str, object], out_dir: Path, timeout: float,
              limits: Limits = Limits(), isolation: str = "auto") -> EvalResult:
    """Run `h{depth}.py` (given as source) in a fresh sandbox and score the trajectory."""
    start = time.monotonic()
    with Sandbox(Path(out_dir), limits=limits, isolation=isolation) as box:
        box.write(f"h{depth}.py", top_source)
        assert box.recorder is not None
        box.recorder.init_commit(manifest)
        outcome = box.run(["python3", f"h{depth}.py"], timeout=timeout)
        screens, output_bytes = box.recorder.evidence(settle=outcome.timed_out or outcome.returncode != 0)
        if outcome.timed_out:
            status, error = "timeout", f"the tower did not finish within {timeout:g}s"
        elif outcome.returncode != 0:
            status, error = "failed", outcome.stderr_tail or f"h{depth}.py exited with {outcome.returncode}"
        else:
            status, error = "ok", None
        if error:
            why = diagnose([*screens, box.log.read_text(errors="replace")[-20000:]], output_bytes)
            if why:
                error = f"{why}: {error}"
            elif screens:  # nothing recognisable: say what the task's terminal showed last
                last = [line for line in screens[-1].splitlines() if line.strip()]
                error = f"{error} (last screen line: {last[-1].strip()!r})" if last else error
        box.finish({"status": status, "error": error, "returncode": outcome.returncode,
                    "wall_seconds": round(outcome.wall_seconds, 6), "isolation": box.isolation, "sandbox": box.token,
                    "output_bytes": output_bytes})
    metrics: dict[str, float | int | None] = {}
    try:
        import validators
        from harness_tower.backends import usage_totals
        metrics = validators.score(box.work)["metrics"]
        metrics.update(usage_totals(box.work / ".tower" / "expert.jsonl"))
    except Exception as exc:  # a scoring failure is stored with its reason, not raised
        status, error = "failed", f"scoring failed: {type(exc).__name__}: {exc}"
    if status == "ok" and (metrics.get("keys_audit") or metrics.get("self_read")):
        status, error = "invalid", (f"constraints violated: keys_audit={metrics.get('keys_audit')}, "
                                    f"self_read={metrics.get('self_read')}")
    return EvalResult(status, metrics, error, time.monotonic() - start, box.work)
