"""What tasks cost and what the seeds know: the figures of the task-suite work.

Three parts, side by side in one run (each can be run alone with --part):

- `seeds`: every seed genome (and the default genome, whose one command row echoes a quoted text) on the
  whole train, validation and test splits of the built-in suite, depth 2: pass rate per split
  and per tier. The train rows of the seeds are generalised reference solutions of six train
  tasks, so train > validation is the expected gap that selection must not be judged on.
- `cost`: seconds per task. The floor is the suite's reference solution typed into a bare
  sandbox terminal (`verify_in_sandbox`: set-up, the solution, the check, and a wrong command
  checked to fail — no tower); ours is a depth-2 and a depth-3 tower of a seed working through
  k of the same tasks, which it passes (k = 1, 3, 6):
  the slope over k is the per-task cost, the intercept the tower's own (typing H1, ...).
- `throughput`: evaluations per hour of a real run's evaluate phase (embedded Ray, the
  quickstart seeds, validation off, population 8, 3 generations) with 1 and 2 evaluator
  actors and k = 4 and 8.

Run: .venv/bin/python benchmarks/bench_tasks.py [--part seeds|cost|throughput] [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness_tower.checks import verify_in_sandbox  # noqa: E402 - after the path set-up
from harness_tower.evaluate import evaluate  # noqa: E402
from harness_tower.genome import TowerGenome, load_genome  # noqa: E402
from harness_tower.tasks import Suite, load_suite  # noqa: E402

SEEDS = ("kernel_line", "kernel_statement", "literal_line", "literal_statement")
KNOWN = ("print-hello-world", "print-one-to-five", "file-create-note", "file-count-logs", "text-count-errors",
         "text-distinct-fruits")


def _tmp() -> tempfile.TemporaryDirectory[str]:
    tmp = tempfile.TemporaryDirectory(prefix="bench-tasks-", dir="/tmp")
    os.chmod(tmp.name, 0o755)  # the sandbox user must reach what lies below
    return tmp


def run_tasks(genome: TowerGenome, tasks: list, depth: int, k: int = 8) -> tuple[list, float]:
    """Per-task results of `genome` on `tasks` (evaluations of k, as a run's validation does)."""
    results, wall = [], 0.0
    for i in range(0, len(tasks), k):
        with _tmp() as tmp:
            res = evaluate(genome, depth=depth, out_dir=Path(tmp) / "o", timeout=300, tasks=tasks[i:i + k])
        results.extend(res.tasks)
        wall += res.wall_seconds
    return results, wall


def part_seeds(suite: Suite) -> None:
    print("## seeds on every split (depth 2)\n")
    print("| genome | train | validation | test | passed by tier (1..5, all splits) |")
    print("|---|---|---|---|---|")
    genomes = {name: load_genome(str(ROOT / "populations" / "seeds" / f"{name}.json")) for name in SEEDS}
    genomes["default (TowerGenome())"] = TowerGenome()
    for name, genome in genomes.items():
        cells, tiers = [], defaultdict(lambda: [0, 0])
        for split in ("train", "validation", "test"):
            results, _ = run_tasks(genome, list(suite.split(split)), depth=2)
            passed = sum(r.passed for r in results)
            cells.append(f"{passed}/{len(results)} ({passed / len(results):.2f})")
            for r in results:
                tiers[r.tier][0] += r.passed
                tiers[r.tier][1] += 1
        by_tier = " · ".join(f"{tiers[t][0]}/{tiers[t][1]}" for t in sorted(tiers))
        print(f"| {name} | {' | '.join(cells)} | {by_tier} |", flush=True)
    print()


def part_cost(suite: Suite, repeats: int) -> None:
    print("## seconds per task (median of repeats)\n")
    # the six train tasks the seeds know: every task is typed, run and checked (a task a
    # tower knows nothing of ends at once, and would make the per-task cost look smaller)
    tasks = [suite.task(t) for t in KNOWN]
    floor: list[float] = []
    for _ in range(repeats):
        one = Suite(name="bench", version=1, tasks=tuple(tasks))
        t0 = time.perf_counter()
        problems = verify_in_sandbox(one)
        floor.append((time.perf_counter() - t0) / len(tasks))
        assert not problems, problems
    print(f"floor (reference solution typed in a bare sandbox terminal, set-up + check, and a wrong "
          f"command each): {statistics.median(floor):.2f} s/task\n")
    print("| tower | k=1 | k=3 | k=6 | per task (slope) | tower overhead (intercept) |")
    print("|---|---|---|---|---|---|")
    genome = load_genome(str(ROOT / "populations" / "seeds" / "literal_line.json"))
    for depth in (2, 3):
        walls = {}
        for k in (1, 3, 6):
            samples = []
            for _ in range(repeats):
                with _tmp() as tmp:
                    res = evaluate(genome, depth=depth, out_dir=Path(tmp) / "o", timeout=300, tasks=tasks[:k])
                assert res.status == "ok" and all(t.passed for t in res.tasks), (res.error, res.tasks)
                samples.append(res.wall_seconds)
            walls[k] = statistics.median(samples)
        slope = (walls[6] - walls[1]) / 5
        print(f"| depth {depth} (literal_line) | {walls[1]:.2f} s | {walls[3]:.2f} s | {walls[6]:.2f} s | "
              f"{slope:.2f} s | {walls[1] - slope:.2f} s |", flush=True)
    print()


def part_throughput() -> None:
    from evolve.config import parse_config, resolve
    from evolve.loop import run_evolution
    from evolve.runs import create_run

    print("## evaluations per hour (evaluate phase of a real run, embedded Ray, depth 2)\n")
    print("| actors | k | evaluations | evaluate phase | evaluations/hour | tasks/hour |")
    print("|---|---|---|---|---|---|")
    for actors in (1, 2):
        for k in (4, 8):
            cfg = parse_config({
                "name": "bench", "seed": 5, "generations": 3,
                "species": {"name": "tower", "params": {"depth": 2, "tasks": k}},
                "population": {"size": 8},
                "objectives": [{"metric": "task_pass_rate", "direction": "max", "ref": 0.0},
                               {"metric": "max_diff_len@h2", "direction": "min", "ref": 2000}],
                "evaluation": {"timeout": 180, "actors": actors, "validation": False},
                "ray": {"num_cpus": 2}})
            with _tmp() as tmp:
                resolved = resolve(cfg)
                run_id, run_dir = create_run(resolved, Path(tmp), run_id="bench")
                summary = run_evolution(resolved, run_id, run_dir)
            n = 24
            spent = summary.timings["evaluate"]
            print(f"| {actors} | {k} | {n} | {spent:.1f} s | {n / spent * 3600:,.0f} | {n * k / spent * 3600:,.0f} |",
                  flush=True)
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("seeds", "cost", "throughput"), action="append")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    parts = args.part or ["seeds", "cost", "throughput"]
    print(f"machine: {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()}\n")
    suite = load_suite("shell")
    if "seeds" in parts:
        part_seeds(suite)
    if "cost" in parts:
        part_cost(suite, args.repeats)
    if "throughput" in parts:
        part_throughput()


if __name__ == "__main__":
    main()
