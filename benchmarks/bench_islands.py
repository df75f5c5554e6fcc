"""Islands against one population at the same evaluation budget (a cheap species).

ZDT1 and ZDT3 (30 variables; ZDT3's front is disconnected, where islands are said to help)
evaluated in the driver: one population of P against `count` islands of P / count each
(ring migration of `migrants` every `interval` generations), each arm stopped by the same
`budget.evaluations`, several run seeds. Reported per arm: the final hypervolume over all
islands, the distinct points of the final front, and the engine seconds.

    .venv/bin/python benchmarks/bench_islands.py [--seeds 5] [--budget 6000] [--pop 60] [--count 3]
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


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
            f"load average {load[0]:.1f} at start")


def one(root: Path, run_id: str, problem: str, seed: int, pop: int, budget: int,
        islands: dict[str, int] | None) -> dict[str, float]:
    from evolve.config import parse_config, resolve
    from evolve.loop import run_evolution
    from evolve.runs import create_run
    from evolve.store import Store

    data: dict[str, Any] = {"name": "isl", "seed": seed, "generations": 10_000,
                            "species": {"name": "numeric", "params": {"problem": problem}},
                            "population": {"size": pop},
                            "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 1.1}],
                            "evaluation": {"actors": 0}, "budget": {"evaluations": budget}}
    if islands:
        data["islands"] = islands
    resolved = resolve(parse_config(data))
    _, run_dir = create_run(resolved, root, run_id=run_id)
    start = time.perf_counter()
    run_evolution(resolved, run_id, run_dir)
    seconds = time.perf_counter() - start
    with Store.open(run_dir, read_only=True) as store:
        hv, points = store.query(
            "SELECT hypervolume, front_points FROM generations ORDER BY generation DESC LIMIT 1")[0]
        spent = store.query("SELECT max(evaluations) FROM spend")[0][0]
    return {"hv": float(hv), "points": int(points), "spent": int(spent), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=6000)
    parser.add_argument("--pop", type=int, default=60)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--migrants", type=int, default=2)
    args = parser.parse_args()
    print(machine())
    islands = {"count": args.count, "interval": args.interval, "migrants": args.migrants}
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for problem in ("zdt1", "zdt3"):
            arms: dict[str, list[dict[str, float]]] = {"one": [], "islands": []}
            for seed in range(args.seeds):
                arms["one"].append(one(Path(tmp), f"{problem}-one-{seed}", problem, seed, args.pop, args.budget,
                                       None))
                arms["islands"].append(one(Path(tmp), f"{problem}-isl-{seed}", problem, seed,
                                           args.pop // args.count, args.budget, islands))
            out[problem] = {arm: {k: {"mean": statistics.mean(r[k] for r in rs),
                                      "sd": statistics.stdev(r[k] for r in rs) if len(rs) > 1 else 0.0}
                                  for k in ("hv", "points", "spent", "seconds")}
                            for arm, rs in arms.items()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
