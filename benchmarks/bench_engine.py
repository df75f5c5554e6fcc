"""Engine benchmarks.

1. Overhead on ZDT1 (population 100, 100 generations): `pymoo.optimize.minimize(NSGA2)`
   serial vs the engine at equal hypervolume, the engine's time split by phase:
   - evaluated in the driver (`evaluation.actors: 0`, what `configs/zdt1.yaml` uses);
   - evaluated on 2 Ray evaluator actors (`evaluation.actors: 2`, as towers are);
   - the floor: the engine's own pymoo ask/tell on object genomes (species operators,
     canonical JSON + blake2b per child, hash duplicates) and the species' evaluation, with
     no naming, scoring, store or checkpoint — what any engine with these guarantees pays.
2. Where the engine goes around pymoo, what that saves per generation (ZDT1, population
   100, the engine's own object populations): NSGA-II's survival with the feasibility split
   done on one array (`FastRankAndCrowding`) against pymoo's `RankAndCrowding`, and handing
   evaluated values to pymoo through its `Evaluator` + `StaticProblem` (what the engine
   does) against setting them by hand (what it did before).
3. Tower evaluations per hour with 1 and 2 evaluator actors (scaling efficiency), and the
   bytes each evaluation sends back through Ray.

    .venv/bin/python benchmarks/bench_engine.py [--generations 100] [--towers 12] [--repeats 2]
    .venv/bin/python benchmarks/bench_engine.py --towers-only --towers 16 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
            f"load average {load[0]:.1f} at start")


def zdt1(generations: int, repeats: int, root: Path) -> dict[str, Any]:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.indicators.hv import HV
    from pymoo.optimize import minimize
    from pymoo.problems import get_problem

    from evolve.config import parse_config, resolve
    from evolve.loop import run_evolution
    from evolve.runs import create_run

    hv_of = HV(ref_point=np.array([1.1, 1.1]))
    rows: dict[str, list[float]] = {"pymoo_s": [], "pymoo_hv": [], "floor_s": [], "floor_hv": []}
    phases: dict[str, list[dict[str, float]]] = {"driver": [], "actors": []}
    for rep in range(repeats):  # interleaved, so that load changes hit all alike
        seed = 1 + rep
        t = time.perf_counter()
        res = minimize(get_problem("zdt1"), NSGA2(pop_size=100), ("n_gen", generations), seed=seed, verbose=False)
        rows["pymoo_s"].append(time.perf_counter() - t)
        rows["pymoo_hv"].append(float(hv_of(res.F)))

        t = time.perf_counter()
        F = floor(generations, seed)
        rows["floor_s"].append(time.perf_counter() - t)
        rows["floor_hv"].append(float(hv_of(F)))

        for label, actors in (("driver", 0), ("actors", 2)):
            cfg = parse_config({"name": "zdt1", "seed": seed, "generations": generations,
                                "species": {"name": "numeric", "params": {"problem": "zdt1"}},
                                "population": {"size": 100},
                                "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 1.1}],
                                "evaluation": {"timeout": 30, "actors": actors}})
            resolved = resolve(cfg)
            run_id, run_dir = create_run(resolved, root, run_id=f"zdt1-{label}-{rep}")
            t = time.perf_counter()
            summary = run_evolution(resolved, run_id, run_dir)  # Ray already up: loop only
            rows.setdefault(f"{label}_s", []).append(time.perf_counter() - t)
            rows.setdefault(f"{label}_hv", []).append(float(summary.hypervolume[-1] or 0.0))
            phases[label].append(summary.timings)
    med = {k: statistics.median(v) for k, v in rows.items()}
    phase = {label: {k: statistics.median(p[k] for p in ps) for k in ps[0]} for label, ps in phases.items()}
    return {"generations": generations, "repeats": repeats, "median": med, "runs": rows, "phases": phase}


def floor(generations: int, seed: int) -> np.ndarray:
    """The engine's selection alone: ask/tell on object genomes, the species' evaluation, F
    and G handed back — no ids, seeds, scoring, rows, store or checkpoint."""
    from evolve.selection import make_algorithm, tell
    from populations.numeric import NumericSpecies

    species = NumericSpecies("zdt1")
    algorithm = make_algorithm("nsga2", species, pop_size=100, n_offsprings=None, n_obj=2, n_ieq_constr=1,
                               generations=generations, seed=seed)
    for _ in range(generations):
        off = algorithm.ask()
        X = np.stack([ind.X[0].genome for ind in off])
        F = species.problem.evaluate(X)
        tell(algorithm, off, F, np.zeros((len(off), 1)))
        algorithm.off = None
    return algorithm.pop.get("F")


def pymoo_paths(generations: int, repeats: int) -> dict[str, Any]:
    """Milliseconds per generation of each way, median over `repeats` runs of `generations`
    generations; both ways of a pair run on the same population, alternately."""
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.population import Population
    from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
    from pymoo.problems.static import StaticProblem

    from evolve.selection import FastRankAndCrowding, make_algorithm, tell
    from populations.numeric import NumericSpecies

    def by_hand(off: Any, F: np.ndarray, G: np.ndarray) -> None:
        off.set("F", F, "G", G, "H", np.zeros((len(off), 0)))
        for ind in off:
            ind.evaluated.update(("F", "G", "H"))

    def by_pymoo(off: Any, F: np.ndarray, G: np.ndarray) -> None:
        Evaluator().eval(StaticProblem(algorithm.problem, F=F, G=G), off)

    ways = {"survival_pymoo": RankAndCrowding(), "survival_fast": FastRankAndCrowding(),
            "values_by_hand": by_hand, "values_by_pymoo": by_pymoo}
    per_run: dict[str, list[float]] = {k: [] for k in ways}
    species = NumericSpecies("zdt1")
    for rep in range(repeats):
        algorithm = make_algorithm("nsga2", species, pop_size=100, n_offsprings=None, n_obj=2, n_ieq_constr=1,
                                   generations=generations, seed=1 + rep)
        spent = dict.fromkeys(ways, 0.0)
        for g in range(generations):
            off = algorithm.ask()
            F = species.problem.evaluate(np.stack([ind.X[0].genome for ind in off]))
            G = np.zeros((len(off), 1))
            for name in (("values_by_hand", "values_by_pymoo") if g % 2 else ("values_by_pymoo", "values_by_hand")):
                fresh = Population.new("X", off.get("X"))
                t = time.perf_counter()
                ways[name](fresh, F, G)
                spent[name] += time.perf_counter() - t
            tell(algorithm, off, F, G)
            merged = Population.merge(algorithm.pop, Population.new("X", off.get("X"), "F", F, "G", G,
                                                                    "H", np.zeros((len(off), 0))))
            for ind in merged:
                ind.evaluated.update(("F", "G", "H"))
            for name in (("survival_fast", "survival_pymoo") if g % 2 else ("survival_pymoo", "survival_fast")):
                t = time.perf_counter()
                ways[name].do(algorithm.problem, merged, n_survive=100, random_state=np.random.default_rng(g))
                spent[name] += time.perf_counter() - t
        for name, seconds in spent.items():
            per_run[name].append(1000 * seconds / generations)
    return {"generations": generations, "repeats": repeats,
            "median_ms": {k: statistics.median(v) for k, v in per_run.items()}, "runs_ms": per_run}


def towers(n: int, root: Path, repeats: int = 1) -> dict[str, Any]:
    """1 and 2 actors on the same n genomes, interleaved `repeats` times (so that load changes
    hit both alike); efficiency = 2-actor rate / (2 x 1-actor rate), per repeat."""
    import ray

    from evolve.actors import EvaluatorPool
    from populations.base import EvalItem
    from populations.tower import TowerSpecies

    species = TowerSpecies(depth=2)
    genomes = species.sample(n, np.random.default_rng(0))
    out: dict[str, Any] = {"evaluations": n, "depth": 2, "efficiency_per_repeat": []}
    for rep in range(repeats):
        for actors in (1, 2):
            pool = EvaluatorPool(species, run_id="bench", n_actors=actors, timeout=120, retries=0, grace=60)
            pool.wait_ready()
            items = [EvalItem(f"a{actors}-{rep}-{k:03d}", g, g.hash(), k) for k, g in enumerate(genomes)]
            t = time.perf_counter()
            outcomes = list(pool.evaluate(items))
            wall = time.perf_counter() - t
            pool.close()
            sizes = [len(pickle.dumps([o], protocol=5)) for o in outcomes]
            bundles = [len(o.bundle or b"") for o in outcomes]
            out[f"actors_{actors}"] = {
                "wall_s": wall, "per_hour": 3600 * n / wall, "load": os.getloadavg()[0],
                "ok": sum(o.status == "ok" for o in outcomes),
                "eval_s_median": statistics.median(o.wall_seconds for o in outcomes),
                "result_bytes_mean": statistics.mean(sizes), "bundle_bytes_mean": statistics.mean(bundles),
            }
        out["efficiency_per_repeat"].append(out["actors_2"]["per_hour"] / (2 * out["actors_1"]["per_hour"]))
        print(json.dumps({"repeat": rep, "actors_1": out["actors_1"], "actors_2": out["actors_2"]}), flush=True)
    out["efficiency"] = statistics.median(out["efficiency_per_repeat"])
    out["species_put_bytes"] = len(ray.cloudpickle.dumps(species))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--towers", type=int, default=12, help="tower evaluations per actor count")
    parser.add_argument("--skip-towers", action="store_true")
    parser.add_argument("--towers-only", action="store_true", help="only part 3, `--repeats` times")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    result: dict[str, Any] = {"machine": machine()}
    t = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    result["ray_start_s"] = time.perf_counter() - t
    root = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    try:
        if not args.towers_only:
            result["zdt1"] = zdt1(args.generations, args.repeats, root)
            result["pymoo_paths"] = pymoo_paths(args.generations, args.repeats)
        if not args.skip_towers:
            result["towers"] = towers(args.towers, root, args.repeats if args.towers_only else 1)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    result["machine_end"] = f"load average {os.getloadavg()[0]:.1f} at end"

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']}; {result['machine_end']}; Ray start-up {result['ray_start_s']:.2f}s")
    if "zdt1" in result:
        print_zdt1(result)
    if "towers" in result:
        tw = result["towers"]
        for a in (1, 2):
            r = tw[f"actors_{a}"]
            print(f"towers depth 2, {a} actor(s): {tw['evaluations']} evaluations in {r['wall_s']:.1f}s = "
                  f"{r['per_hour']:.0f}/h ({r['ok']} ok; median evaluation {r['eval_s_median']:.2f}s; "
                  f"result {r['result_bytes_mean'] / 1024:.1f} KiB, bundle {r['bundle_bytes_mean'] / 1024:.1f} KiB)")
        print(f"  scaling efficiency 2 vs 1 actor: {100 * tw['efficiency']:.0f}% (median; per repeat "
              + ", ".join(f"{100 * e:.0f}%" for e in tw["efficiency_per_repeat"])
              + f"); species object put once: {tw['species_put_bytes'] / 1024:.1f} KiB")
    return 0


def print_zdt1(result: dict[str, Any]) -> None:
    z = result["zdt1"]
    m = z["median"]
    print(f"ZDT1, population 100, {z['generations']} generations, median of {z['repeats']} (seeds 1..):")
    print(f"  pymoo.minimize(NSGA2) serial          : {m['pymoo_s']:.3f}s  HV {m['pymoo_hv']:.4f}")
    print(f"  floor: ask/tell on object genomes     : {m['floor_s']:.3f}s  HV {m['floor_hv']:.4f}  "
          f"-> {m['floor_s'] / m['pymoo_s']:.2f}x pymoo")
    print(f"  engine, evaluated in the driver       : {m['driver_s']:.3f}s  HV {m['driver_hv']:.4f}  "
          f"-> {m['driver_s'] / m['pymoo_s']:.2f}x pymoo, {m['driver_s'] / m['floor_s']:.2f}x the floor")
    print(f"  engine, 2 Ray evaluator actors        : {m['actors_s']:.3f}s  HV {m['actors_hv']:.4f}  "
          f"-> {m['actors_s'] / m['pymoo_s']:.2f}x pymoo; with Ray start-up "
          f"{(m['actors_s'] + result['ray_start_s']) / m['pymoo_s']:.2f}x")
    for label, ph in z["phases"].items():
        print(f"  engine phases, {label} (s): " + ", ".join(f"{k} {v:.3f}" for k, v in ph.items()))
    print("  per run (s): " + "; ".join(f"{k} " + " ".join(f"{v:.3f}" for v in vs)
                                       for k, vs in z["runs"].items() if k.endswith("_s")))
    pm = result["pymoo_paths"]["median_ms"]
    print(f"around pymoo, ms per generation (median of {z['repeats']} x {z['generations']} generations): "
          f"survival {pm['survival_pymoo']:.3f} pymoo's, {pm['survival_fast']:.3f} FastRankAndCrowding; "
          f"values {pm['values_by_pymoo']:.3f} Evaluator+StaticProblem, {pm['values_by_hand']:.3f} by hand")


if __name__ == "__main__":
    sys.exit(main())
