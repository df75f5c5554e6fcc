"""One evaluation: render the top level, run the tower in a sandbox, score its trajectory.

>>> # result = evaluate(TowerGenome(), depth=3, out_dir=Path("out"))   # doctest: +SKIP
>>> # result.status, result.metrics["task_correct"]                      # ('ok', 1)
"""
from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness_tower.backends.relay import ExpertEndpoints, ExpertRelay
from harness_tower.diagnose import diagnose
from harness_tower.errors import TowerError
from harness_tower.gateway import GatewayCaps
from harness_tower.genome import TowerGenome
from harness_tower.render import render
from harness_tower.sample import TaskResult, TaskSample
from harness_tower.sandbox import Limits, Sandbox
from harness_tower.tasks import Task
from harness_tower.worktree import TreeCaps

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
    isolation: str | None = None
    tasks: list[TaskResult] = field(default_factory=list)  # per task of the sample, in order

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "metrics": self.metrics, "error": self.error,
                "wall_seconds": self.wall_seconds, "trajectory": str(self.trajectory) if self.trajectory else None,
                "node": self.node, "isolation": self.isolation, "tasks": [t.to_dict() for t in self.tasks]}


def evaluate(genome: TowerGenome, *, depth: int, out_dir: Path, seed: int = 0, timeout: float = 120.0,
             run_id: str = "local", individual_id: str = "local", limits: Limits = Limits(),
             isolation: str = "auto", experts: ExpertEndpoints | None = None,
             tasks: Sequence[Task] = ()) -> EvalResult:
    """Run a depth-N tower of this genome whose task level works through `tasks`; never raises
    for a misbehaving harness."""
    start = time.monotonic()
    out_dir = Path(out_dir)
    if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        return EvalResult("invalid", error=f"depth must be an integer in 1..{MAX_DEPTH}, got {depth!r}")
    try:
        top = render(genome, depth)
    except TowerError as exc:
        return EvalResult("invalid", error=str(exc), wall_seconds=time.monotonic() - start)
    manifest = {"run_id": run_id, "individual_id": individual_id, "genome_hash": genome.hash(),
                "depth": depth, "seed": seed, "prompt": "$ ", "platform_version": PLATFORM_VERSION}
    result = run_tower(top, depth=depth, manifest=manifest, out_dir=out_dir, timeout=timeout, limits=limits,
                       isolation=isolation, experts=experts, tasks=tasks)
    result.wall_seconds = time.monotonic() - start
    return result


# Constraints every tower must meet, with what breaking each means (the reason names the rule).
RULES = {
    "keys_audit": "key commits breaking the send rules",
    "self_read": "levels reading their own source",
    "untyped_chars": "characters of code that were not typed",
    "tamper": "commits holding what only the evaluator may write",
}


def task_manifest(tasks: Sequence[Task]) -> dict[str, object]:
    """What the manifest says of a task sample: each task's id, split, tier and instruction (the
    checks stay with the evaluator); a single task printing its answer also gets the `task`
    entry that the validator `task_correct` reads."""
    out: dict[str, object] = {"tasks": [{"id": t.id, "split": t.split, "tier": t.tier, "instruction": t.instruction}
                                        for t in tasks]}
    if len(tasks) == 1 and tasks[0].check.output is not None:
        out["task"] = {"instruction": tasks[0].instruction, "expected": "\n".join(tasks[0].check.output)}
    return out


def run_tower(top_source: str, *, depth: int, manifest: dict[str, object], out_dir: Path, timeout: float,
              limits: Limits = Limits(), isolation: str = "auto", experts: ExpertEndpoints | None = None,
              tree_caps: TreeCaps | None = None, gateway_caps: GatewayCaps | None = None,
              tasks: Sequence[Task] = ()) -> EvalResult:
    """Run `h{depth}.py` (given as source) in a fresh sandbox and score the trajectory; with
    `tasks`, its task level works through them (`sample.TaskSample`) and each is checked."""
    start = time.monotonic()
    relay = ExpertRelay(experts if experts is not None else ExpertEndpoints.from_env())
    manifest = dict(manifest, terminal={"width": 100, "height": 30})
    if tasks:
        manifest.update(task_manifest(tasks))
    with Sandbox(Path(out_dir), limits=limits, isolation=isolation, relay=relay, tree_caps=tree_caps,
                 gateway_caps=gateway_caps) as box:
        assert box.recorder is not None and box.gateway is not None
        sample = TaskSample(box, tasks) if tasks else None
        box.gateway.tasks = sample
        box.write_top(depth, top_source)
        box.recorder.init_commit(manifest)
        outcome = box.run_top(depth, top_source, timeout)
        if sample is not None:
            sample.finish()
        gate = box.gateway
        screens, output_bytes = box.recorder.evidence(settle=outcome.timed_out or outcome.returncode != 0)
        if gate.fatal:
            status, error = "failed", gate.fatal
        elif outcome.timed_out:
            status, error = "timeout", f"the tower did not finish within {timeout:g}s"
        elif outcome.returncode != 0:
            status, error = "failed", outcome.stderr_tail or f"h{depth}.py exited with {outcome.returncode}"
        else:
            status, error = "ok", None
        if error and not gate.fatal:
            why = diagnose([*screens, _read_tail(box.log)], output_bytes)
            if why:
                error = f"{why}: {error}"
            elif screens:  # nothing recognisable: say what the task's terminal showed last
                last = [line for line in screens[-1].splitlines() if line.strip()]
                error = f"{error} (last screen line: {last[-1].strip()!r})" if last else error
        audits, refusals = list(gate.audits), list(gate.refusals)
        results = sample.results() if sample is not None else []
        final = box.finish({"status": status, "error": error, "returncode": outcome.returncode,
                            "wall_seconds": round(outcome.wall_seconds, 6), "isolation": box.isolation,
                            "sandbox": box.token, "output_bytes": output_bytes, "audits": audits,
                            "binding_refusals": refusals, "tasks": [r.to_dict() for r in results]})
        status, error = str(final["status"]), final["error"]  # type: ignore[assignment]
    metrics: dict[str, float | int | None] = {}
    try:
        import validators
        metrics = validators.score(box.work)["metrics"]
    except Exception as exc:  # a scoring failure is stored with its reason, not raised
        status, error = "failed", f"scoring failed: {type(exc).__name__}: {exc}"
    metrics.update(relay.usage())
    if sample is not None:
        metrics["task_pass_rate"] = sample.pass_rate()
        metrics["tasks_passed"] = sum(r.passed for r in results)
        metrics["tasks_sampled"] = len(tasks)
    metrics["audit_refusals"] = len(audits)
    metrics["binding_refusals"] = len(refusals)
    if not gate.fatal:
        broken = violations(metrics, audits, refusals)
        if broken:
            status, error = "invalid", "; ".join(broken)
    return EvalResult(status, metrics, error, time.monotonic() - start, box.work, isolation=box.isolation,
                      tasks=results)


def violations(metrics: dict[str, float | int | None], audits: list[tuple[str, str, str]],
               refusals: list[tuple[str, str]]) -> list[str]:
    """Every rule the evaluation broke, each named with what was seen."""
    out = [f"constraint violated: {rule}={metrics[rule]} ({what})" for rule, what in RULES.items()
           if metrics.get(rule)]
    if audits:
        session, kind, detail = audits[0]
        more = f" (+{len(audits) - 1} more)" if len(audits) > 1 else ""
        rule = "self_read" if kind == "self_read" else "harnesses see only their terminal"
        out.append(f"runtime audit ({rule}): the level bound to {session} tried {detail}{more}")
    if refusals:
        session, what = refusals[0]
        out.append(f"session binding: the level bound to {session} asked for {what}")
    return out


def _read_tail(path: Path) -> str:
    try:
        return path.read_bytes()[-20000:].decode("utf-8", errors="replace")
    except OSError:
        return ""
