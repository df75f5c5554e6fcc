"""Islands against one population at the same evaluation budget.

Numeric (default): ZDT1 and ZDT3 (30 variables; ZDT3's front is disconnected, where islands are said to help)
evaluated in the driver: one population of P against `count` islands of P / count each
(ring migration of `migrants` every `interval` generations), each arm stopped by the same
`budget.evaluations`, several run seeds. Reported per arm: the final hypervolume over all
islands, the distinct points of the final front, and the engine seconds.

    .venv/bin/python benchmarks/bench_islands.py [--seeds 5] [--budget 6000] [--pop 60] [--count 3]

Towers (`--towers`): the built-in shell suite with the search that beats random search
(`bench_search.py`'s `reflect` arm: NSGA-II, graph variation, credit, retrieval reflection;
k train tasks per evaluation, task_pass_rate and max_diff_len@h2), one population of P
against `count` islands of P / count, both stopped by `budget.evaluations`; every new front
member evaluated on the 20 validation tasks. Reported per run: the best validation pass rate,
the last front's distinct points and hypervolume (over all islands), evaluations spent.

    .venv/bin/python benchmarks/bench_islands.py --towers [--seeds 3] [--budget 96] [--pop 8] [--count 2]
        [--interval 3] [--migrants 1] [--k 8] [--json F]
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


def towers(args: argparse.Namespace) -> None:
    from benchmarks.bench_search import config, measure, summary

    islands = {"count": args.count, "interval": args.interval, "migrants": args.migrants}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-islands-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o755)  # sandboxes drop to an unprivileged user who must reach them
        for seed in range(1, args.seeds + 1):
            for arm in ("one", "islands"):
                data = config("reflect", seed, args.budget, args.pop, args.k, None)
                data.update(generations=1000, budget={"evaluations": args.budget})
                if arm == "islands":
                    data.update(population={"size": args.pop // args.count}, islands=islands)
                r = measure(arm, seed, data, Path(tmp), test=False)
                r.pop("curve")
                results.append(r)
                print(json.dumps(r), flush=True)
    print("\n| arm | best validation pass rate | distinct front points | hypervolume | evaluations | wall s |")
    print("|---|---|---|---|---|---|")
    for arm in ("one", "islands"):
        mine = [r for r in results if r["arm"] == arm]
        print(f"| {arm} | {summary([float(r['validation']) for r in mine])} | "
              f"{summary([float(r['front_points']) for r in mine])} | "
              f"{summary([float(r['hypervolume']) for r in mine])} | "
              f"{summary([float(r['evaluations']) for r in mine])} | {summary([float(r['wall_s']) for r in mine])} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=6000)
    parser.add_argument("--pop", type=int, default=60)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--migrants", type=int, default=2)
    parser.add_argument("--towers", action="store_true", help="tower runs on the built-in shell suite")
    parser.add_argument("--k", type=int, default=8, help="towers: train tasks per evaluation")
    parser.add_argument("--json", help="towers: write every run's result here")
    args = parser.parse_args()
    print(machine())
    if args.towers:
        towers(args)
        return
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
