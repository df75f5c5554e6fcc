"""Cascades: evaluation seconds a cheap stage saves per generation, and the pass rate it costs.

Two arms of the same small tower run (the quickstart's species: depth-2 towers, the built-in
`shell` suite, k = 4 train tasks per evaluation; embedded Ray, 2 evaluator actors, validation
off), several run seeds:
- `plain`: every new individual evaluated fully;
- `cascade`: `evaluation.cascade: {tasks: 1, depth: 1, metric: task_pass_rate, min: 1.0}` —
  a depth-1 tower on the first task of the generation's draw; only those that pass it are
  evaluated fully.
Per generation: evaluation seconds spent (full evaluations + cheap stages), individuals gated,
the stored estimate of full seconds saved (`gate_saved`); per run: the final front's best and
mean train pass rate. Generation 0 is the like-for-like figure (both arms evaluate the same
individuals on the same draw); later generations differ in what selection kept.

    .venv/bin/python benchmarks/bench_cascade.py [--seeds 7 8] [--pop 6] [--generations 3]
        [--cascade '{"tasks": 2, "metric": "task_pass_rate", "min": 0.5}']
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASCADE = {"tasks": 1, "depth": 1, "metric": "task_pass_rate", "min": 1.0}


def config(seed: int, pop: int, generations: int, cascade: dict[str, Any] | None) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"timeout": 90, "actors": 2, "validation": False}
    if cascade is not None:
        evaluation["cascade"] = cascade
    return {"name": "bench", "seed": seed, "generations": generations,
            "species": {"name": "tower", "params": {
                "depth": 2, "tasks": 4, "suite": "shell",
                "seeds": ["literal_line", "literal_statement", "kernel_line", "kernel_statement"]}},
            "population": {"size": pop},
            "objectives": [{"metric": "task_pass_rate", "direction": "max", "ref": 0.0},
                           {"metric": "syntax_ratio@h2", "direction": "max", "ref": 0.0},
                           {"metric": "max_diff_len@h2", "direction": "min", "ref": 2000}],
            "evaluation": evaluation, "ray": {"num_cpus": 2}}


def run(root: Path, run_id: str, data: dict[str, Any]) -> dict[str, Any]:
    from evolve.config import parse_config, resolve
    from evolve.loop import run_evolution
    from evolve.runs import create_run
    from evolve.store import Store

    resolved = resolve(parse_config(data))
    _, run_dir = create_run(resolved, root, run_id=run_id)
    start = time.perf_counter()
    run_evolution(resolved, run_id, run_dir)
    wall = time.perf_counter() - start
    with Store.open(run_dir, read_only=True) as store:
        gens = store.query("""
            SELECT g.generation, g.gated, g.stage_seconds, g.gate_saved,
                   (SELECT coalesce(sum(e.wall_seconds), 0) FROM evaluations e
                    WHERE e.run_id = g.run_id AND e.generation = g.generation AND e.reused_from IS NULL
                      AND coalesce(e.error, '') NOT LIKE 'gated:%') AS full_seconds
            FROM generations g ORDER BY g.generation""")
        front = [r[0] for r in store.query(
            """SELECT (e.metrics->>'task_pass_rate')::DOUBLE FROM fronts f JOIN evaluations e
               USING (run_id, individual_id)
               WHERE f.generation = (SELECT max(generation) FROM fronts) AND f.rank = 0 AND e.status = 'ok'""")]
    return {"wall": wall, "gens": gens, "best": max(front, default=0.0),
            "mean": statistics.fmean(front) if front else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8])
    ap.add_argument("--pop", type=int, default=6)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--cascade", type=json.loads, default=CASCADE, help="evaluation.cascade as JSON")
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
          f"load average {load[0]:.1f} at start")
    print(f"cascade: {args.cascade}; population {args.pop}, {args.generations} generations, depth 2, k = 4")
    root = Path(tempfile.mkdtemp(prefix="bench-cascade-"))
    for seed in args.seeds:
        arms = {name: run(root, f"{name}-{seed}", config(seed, args.pop, args.generations, c))
                for name, c in (("plain", None), ("cascade", args.cascade))}
        plain, cas = arms["plain"], arms["cascade"]
        print(f"\nseed {seed}: run wall {plain['wall']:.0f}s plain, {cas['wall']:.0f}s cascade; final front "
              f"pass rate best/mean {plain['best']:.2f}/{plain['mean']:.2f} plain, "
              f"{cas['best']:.2f}/{cas['mean']:.2f} cascade")
        print("| gen | plain eval s | cascade full s | stage s | gated | gate_saved s | spent vs plain |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for p, c in zip(plain["gens"], cas["gens"]):
            spent = c[4] + c[2]
            print(f"| {p[0]} | {p[4]:.1f} | {c[4]:.1f} | {c[2]:.1f} | {c[1]} | {c[3]:.1f} | "
                  f"{100 * (spent - p[4]) / p[4]:+.0f} % |")
        total_p = sum(p[4] for p in plain["gens"])
        total_c = sum(c[4] + c[2] for c in cas["gens"])
        print(f"| all | {total_p:.1f} | {sum(c[4] for c in cas['gens']):.1f} | {sum(c[2] for c in cas['gens']):.1f} | "
              f"{sum(c[1] for c in cas['gens'])} | {sum(c[3] for c in cas['gens']):.1f} | "
              f"{100 * (total_c - total_p) / total_p:+.0f} % |")


if __name__ == "__main__":
    main()
