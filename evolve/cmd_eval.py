"""`evolve eval GENOME.json --depth N --out DIR [--json]`: one tower evaluation, locally."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from evolve.errors import EvolveError

RANK_METRICS = ("commits", "avg_interval", "max_diff_len", "syntax_ratio", "idle_keys", "code_bytes", "bytes_ratio",
                "edit_distance")
TOWER_METRICS = ("task_pass_rate", "bytes_convergence", "keys_audit", "self_read", "untyped_chars", "tamper")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("eval", help="evaluate one tower genome locally and print its per-rank metrics")
    p.add_argument("genome", help="tower genome JSON file (e.g. populations/seeds/kernel_line.json)")
    p.add_argument("--depth", type=int, default=3, help="tower depth N: the top level is h{N}.py (default 3)")
    p.add_argument("--out", required=True, help="directory for the trajectory repository (must be new or empty)")
    p.add_argument("--timeout", type=float, default=120.0, help="wall-clock seconds for the whole tower")
    p.add_argument("--seed", type=int, default=0, help="the evaluation's 64-bit seed")
    p.add_argument("--isolation", choices=("auto", "bwrap", "process"), default="auto",
                   help="sandbox isolation (auto: bwrap where it works, else process)")
    p.add_argument("--suite", default="shell", help="task suite: a built-in name or a YAML file (default shell)")
    p.add_argument("--split", default="train", choices=("train", "validation", "test"),
                   help="the split the tasks are drawn from (default train)")
    p.add_argument("--tasks", type=int, default=4, metavar="K", help="how many tasks to draw (default 4)")
    p.add_argument("--task", action="append", metavar="ID", help="a task by id instead of a draw (repeatable)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from evolve.tables import finite
    from harness_tower.backends.relay import ExpertEndpoints
    from harness_tower.errors import TowerError
    from harness_tower.evaluate import MAX_DEPTH, evaluate
    from harness_tower.genome import load_genome
    from harness_tower.sandbox import resolve_isolation
    from harness_tower.tasks import load_suite

    if not 1 <= args.depth <= MAX_DEPTH:
        raise EvolveError(f"--depth must be within 1..{MAX_DEPTH} (got {args.depth})")
    if args.timeout <= 0:
        raise EvolveError(f"--timeout must be positive (got {args.timeout:g})")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvolveError(f"--out {out}: exists and is not an empty directory (choose a new one)")
    genome = load_genome(args.genome)
    try:  # model endpoints: this process's environment (OPENAI_BASE_URL, TOWER_EXPERT_MODEL, ...)
        experts = ExpertEndpoints.from_env()
        resolve_isolation(args.isolation)
        suite = load_suite(args.suite)
        tasks = ([suite.task(t) for t in args.task] if args.task
                 else suite.sample(args.split, args.tasks, f"eval:{args.seed}"))
    except TowerError as exc:
        raise EvolveError(str(exc)) from None
    if args.json:
        result = evaluate(genome, depth=args.depth, out_dir=out, seed=args.seed, timeout=args.timeout,
                          experts=experts, isolation=args.isolation, tasks=tasks)
        print(json.dumps(finite(result.to_dict()), indent=2, sort_keys=True, allow_nan=False))
    else:
        from rich.console import Console

        console = Console(stderr=True)
        with console.status(f"evaluating {args.genome} at depth {args.depth} ..."):
            result = evaluate(genome, depth=args.depth, out_dir=out, seed=args.seed, timeout=args.timeout,
                              experts=experts, isolation=args.isolation, tasks=tasks)
        print_result(result, args.depth)
    if result.status != "ok":
        print(f"evolve: evaluation {result.status}: {result.error}", file=sys.stderr)
        return 1
    return 0


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.4g}"
    return str(value)


def print_result(result: object, depth: int) -> None:
    from rich.console import Console
    from rich.table import Table

    metrics = result.metrics  # type: ignore[attr-defined]
    table = Table(title=f"per-rank metrics ({result.status}, {result.wall_seconds:.2f}s)")  # type: ignore[attr-defined]
    table.add_column("metric")
    for n in range(depth, 0, -1):
        table.add_column(f"h{n}", justify="right")
    for name in RANK_METRICS:
        table.add_row(name, *(_fmt(metrics.get(f"{name}@h{n}")) for n in range(depth, 0, -1)))
    console = Console()
    console.print(table)
    tower = Table(title="tower")
    for name in TOWER_METRICS:
        tower.add_column(name, justify="right")
    tower.add_row(*(_fmt(metrics.get(name)) for name in TOWER_METRICS))
    console.print(tower)
    tasks = Table(title="tasks")
    for column in ("task", "split", "tier", "passed", "typed", "why"):
        tasks.add_column(column)
    for t in result.tasks:  # type: ignore[attr-defined]
        tasks.add_row(t.task_id, t.split, str(t.tier), "yes" if t.passed else "no",
                      t.typed.replace("\n", " ⏎ ")[:40], t.reason[:50])
    console.print(tasks)
    console.print(f"trajectory: {result.trajectory}  (isolation {result.isolation})")  # type: ignore[attr-defined]
