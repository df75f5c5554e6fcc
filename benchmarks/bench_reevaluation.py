"""Re-evaluation against false elites, and the budget stop's overshoot.

1. False elites (issue "Prove it improves at scale", Measure 1, on a noisy numeric
   objective): ZDT1 (5 variables) whose two objectives carry Gaussian noise (sigma per
   objective, drawn from each evaluation's seed: `tests/evolve/noisy_species.py`). Two arms
   at the same evaluation budget (`budget.evaluations`), several run seeds:
   - `plain`: every individual evaluated once (replicates 1), front = survival's rank 0;
   - `reeval`: front members evaluated again up to 3 samples, selection on the means,
     front = the guardrail's members (min_samples 3).
   On the last generation's reported front: how many members 3 fresh replicates displace
   (another member's fresh mean dominates theirs), how many are false elites (their true,
   noise-free objectives dominated by another member's), whether the reported best f1 is
   the true best f1 of the front, and the front's true hypervolume. A third arm adds the
   guardrail's `min_delta`; "beyond delta" counts only displacements by that margin.
   With `--towers`, the issue's own setting: tower runs on the built-in shell suite whose
   selection uses `avg_interval@h2` (with `task_pass_rate`), arms `plain`, `guarded`
   (replicates 3, min_samples 3, min_delta) and `calibrated` (the same, selection on the
   normalised `avg_interval_norm@h2`, each actor's reference tower taken again every
   `--calibrate-every` s; its delta: the raw one in units of a 2.5 ms reference);
   every survivor of the last generation evaluated 3 more times afresh on its task draw (two
   at a time, as the run's two actors did; the calibrated arm's normalised by each
   evaluator's own reference tower, as its actors did). A reported front member "loses its
   place on re-evaluation" when, its fresh mean put in place of what the run stored for it,
   the run's own rule lets another survivor's stored mean displace it (plain: dominance by
   anyone; guarded arms: better by the margin with at least 3 samples) — once with every
   objective afresh, once with `avg_interval@h2` alone afresh (its stored pass rate kept: the
   fresh one is on the last generation's draw, and pass rates differ by draw); it is "displaced"
   when another survivor's fresh mean dominates its fresh mean (everyone re-evaluated),
   strictly and by each margin.
2. Budget overshoot: how far past `budget.evaluations` and `budget.wall_seconds` a run
   goes (it stops between generations, so by at most one generation's spend).

    .venv/bin/python benchmarks/bench_reevaluation.py [--seeds 10] [--budget 600] [--noise 0.1]
    .venv/bin/python benchmarks/bench_reevaluation.py --towers [--seeds 4] [--budget 64] [--pop 8]
        [--delta 0.0004] [--k 4] [--arms plain,guarded,calibrated] [--calibrate-every 120]
        [--margins 0.0004,0.001]
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

import numpy as np

NOISY = "tests.evolve.noisy_species:NoisyNumeric"
REF = np.array([2.0, 12.0])


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
            f"load average {load[0]:.1f} at start")


def config(seed: int, budget: dict[str, float], noise: float, replicates: int, pop: int,
           generations: int = 1000, problem: str = "zdt1", min_delta: float = 0.0) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"actors": 0}
    if replicates > 1:
        evaluation.update(replicates=replicates, min_samples=replicates, min_delta=min_delta)
    return {"name": "bench", "seed": seed, "generations": generations,
            "species": {"name": NOISY, "params": {"noise": noise, "problem": problem, "n_var": 5}},
            "population": {"size": pop},
            "objectives": [{"metric": "f1", "ref": float(REF[0])}, {"metric": "f2", "ref": float(REF[1])}],
            "evaluation": evaluation, "budget": budget}


def run(root: Path, run_id: str, data: dict[str, Any]) -> tuple[Path, float]:
    from evolve.config import parse_config, resolve
    from evolve.loop import run_evolution
    from evolve.runs import create_run

    resolved = resolve(parse_config(data))
    _, run_dir = create_run(resolved, root, run_id=run_id)
    start = time.perf_counter()
    run_evolution(resolved, run_id, run_dir)
    return run_dir, time.perf_counter() - start


def dominated(F: np.ndarray, delta: float = 0.0) -> np.ndarray:
    """Which rows some other row dominates (minimisation), by `delta` in one objective at least."""
    out = np.zeros(len(F), dtype=bool)
    for i in range(len(F)):
        others = np.delete(F, i, axis=0)
        out[i] = bool(np.any(np.all(others <= F[i], axis=1) & np.any(others < F[i], axis=1)
                             & np.any(F[i] - others >= delta, axis=1)))
    return out


def judge(run_dir: Path, noise: float, seed: int, delta: float) -> dict[str, float]:
    from pymoo.indicators.hv import HV

    from evolve.store import Store
    from evolve.tables import front_rows
    from populations.base import EvalItem
    from tests.evolve.noisy_species import NoisyNumeric

    with Store.open(run_dir, read_only=True) as store:
        rows = [r for r in front_rows(store) if r["standing"] != "pending"]
        spent = store.query("SELECT max(evaluations) FROM spend")[0][0]
    X = np.array([json.loads(r["genome"]) for r in rows])  # (n, 5)
    reported = np.array([r["objectives"] for r in rows], dtype=float)
    species = NoisyNumeric(noise=noise, problem="zdt1", n_var=5)
    true = species.problem.evaluate(X)  # noise-free
    fresh = np.zeros_like(reported)
    rng = np.random.default_rng([seed, 0xF4E5])
    for _ in range(3):  # three fresh replicates of every member, new seeds
        items = [EvalItem(f"m{i}", x, "", int(rng.integers(2**63)), None) for i, x in enumerate(X)]
        outs = species.evaluate(items, workdir=Path(tempfile.gettempdir()), timeout=30, run_id="bench")
        fresh += np.array([[o.metrics["f1"], o.metrics["f2"]] for o in outs])
    fresh /= 3
    best_reported = int(np.argmin(reported[:, 0]))
    return {"front": len(rows), "displaced": int(dominated(fresh).sum()),
            "displaced_by_delta": int(dominated(fresh, delta).sum()),
            "false_elites": int(dominated(true).sum()),
            "best_is_best": float(true[best_reported, 0] <= true[:, 0].min() + 1e-12),
            "true_hv": float(HV(ref_point=REF)(true)), "spent": int(spent)}


def false_elites(root: Path, seeds: int, budget: int, noise: float, pop: int, delta: float) -> dict[str, Any]:
    arms = {"plain": (1, 0.0), "reeval": (3, 0.0), f"reeval_delta_{delta:g}": (3, delta)}
    out: dict[str, list[dict[str, float]]] = {a: [] for a in arms}
    for seed in range(seeds):
        for arm, (replicates, min_delta) in arms.items():
            run_dir, _ = run(root, f"{arm}-{seed}", config(seed, {"evaluations": budget}, noise, replicates, pop,
                                                           min_delta=min_delta))
            out[arm].append(judge(run_dir, noise, seed, delta))
    summary = {}
    for arm, rs in out.items():
        members = sum(r["front"] for r in rs)
        summary[arm] = {
            "runs": len(rs), "evaluations_spent_mean": statistics.mean(r["spent"] for r in rs),
            "front_members": members,
            "displaced_by_3_fresh": sum(r["displaced"] for r in rs),
            "displaced_by_3_fresh_beyond_delta": sum(r["displaced_by_delta"] for r in rs),
            "runs_with_a_displaced_member": sum(r["displaced"] > 0 for r in rs),
            "false_elites": sum(r["false_elites"] for r in rs),
            "reported_best_f1_is_true_best": sum(r["best_is_best"] for r in rs),
            "true_hv_mean": statistics.mean(r["true_hv"] for r in rs),
            "true_hv_sd": statistics.stdev(r["true_hv"] for r in rs) if len(rs) > 1 else 0.0}
    return summary


TOWER_ARMS = ("plain", "guarded", "calibrated")


REFERENCE_MS = 2.5  # the reference tower's avg_interval@h2 on this box: a raw delta in its units


def tower_config(arm: str, seed: int, budget: int, pop: int, k: int, delta: float,
                 calibrate_every: float) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"timeout": 120, "actors": 2, "validation": False}
    if arm != "plain":
        evaluation.update(replicates=3, min_samples=3, min_delta=delta)
    if arm == "calibrated":
        evaluation.update(calibrate=True, calibrate_every=calibrate_every)
    return {"name": f"fe-{arm}", "seed": seed, "generations": 1000,
            "species": {"name": "tower", "params": {"depth": 2, "tasks": k}},
            "population": {"size": pop},
            "objectives": [{"metric": "task_pass_rate", "direction": "max", "ref": 0.0},
                           {"metric": "avg_interval@h2", "direction": "min"}],
            "evaluation": evaluation, "budget": {"evaluations": budget}, "ray": {"num_cpus": 2}}


def judge_towers(run_dir: Path, arm: str, seed: int, k: int, margins: list[float],
                 calibrate_every: float) -> dict[str, Any]:
    """3 fresh replicates of every survivor of the last generation (each distinct genome once,
    two evaluations at a time, on the last generation's task draw); a reported front member is
    displaced when another survivor's fresh mean dominates its own."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from evolve.calibrate import Clock
    from evolve.replicates import better_by
    from evolve.store import Store
    from evolve.tables import front_rows
    from populations.base import EvalItem
    from populations.tower import TowerSpecies

    with Store.open(run_dir, read_only=True) as store:
        members = {r["individual_id"] for r in front_rows(store) if r["standing"] != "pending"}
        last, spent = store.query("SELECT max(generation), (SELECT max(evaluations) FROM spend) FROM generations")[0]
        survivors = store.query("""SELECT f.individual_id, i.hash, i.genome FROM fronts f
                                   JOIN individuals i USING (run_id, individual_id)
                                   WHERE f.generation = ? ORDER BY f.individual_id""", [last])
        stored_samples = store.query("""SELECT individual_id, objectives FROM evaluations
                                        UNION ALL SELECT individual_id, objectives FROM replicates""")
    species = TowerSpecies(depth=2, tasks=k)
    species.use_seed(seed)
    context = dict(species.context(int(last), ()), trajectory=False)
    genomes = {h: species.from_data(json.loads(text)) for _, h, text in survivors}
    hashes = list(genomes)
    work = Path(tempfile.mkdtemp(prefix="fe-judge-", dir="/tmp"))
    os.chmod(work, 0o755)
    local = threading.local()

    def fresh(job: tuple[int, int]) -> tuple[int, float, float]:
        i, rep = job
        if arm == "calibrated" and not hasattr(local, "clock"):  # one reference per evaluator
            local.clock = Clock(calibrate_every, lambda: species.reference_timing(work))
        reference = local.clock.current() if arm == "calibrated" else 1.0
        out = species.evaluate([EvalItem(f"m{i}-r{rep}", genomes[hashes[i]], "", 1000 + rep, context)],
                               workdir=work, timeout=120, run_id="judge")[0]
        interval = out.metrics.get("avg_interval@h2") if out.status == "ok" else None
        if interval is None or reference is None:
            return i, 0.0, float("inf")
        return i, float(out.metrics["task_pass_rate"]), float(interval) / reference

    sums = np.zeros((len(hashes), 2))
    with ThreadPoolExecutor(2) as pool:
        for i, passed, interval in pool.map(fresh, [(i, rep) for rep in range(3) for i in range(len(hashes))]):
            sums[i] += (-passed, interval)  # minimisation
    fresh_of = dict(zip(hashes, sums / 3))
    F = np.array([fresh_of[h] for _, h, _ in survivors])
    is_member = [ind in members for ind, _, _ in survivors]
    unit = 1e-3 * REFERENCE_MS if arm == "calibrated" else 1.0  # margins are raw seconds
    displaced = {f"{m:g}": sum(bool(d) for d, mine in zip(dominated(F, m / unit), is_member) if mine)
                 for m in [0.0, *margins]}
    # The run's own view: each survivor's stored samples (minimisation form) and their mean.
    by_id: dict[str, list[list[float]]] = {}
    for ind, objectives in stored_samples:
        by_id.setdefault(ind, []).append([-(objectives[0] if objectives[0] is not None else -np.inf),
                                          objectives[1] if objectives[1] is not None else np.inf])
    known = {ind: (np.mean(np.array(by_id[ind]), axis=0), len(by_id[ind])) for ind, _, _ in survivors}
    need = 1 if arm == "plain" else 3  # who may displace a member under the arm's rule (min_samples)
    lost = {f"{m:g}": sum(any(j != ind and n >= need and better_by(mean, fresh_of[h], m / unit)
                              for j, (mean, n) in known.items())
                          for ind, h, _ in survivors if ind in members)
            for m in [0.0, *margins]}
    # The same, the timing objective alone afresh: a member keeps its stored pass rate (the
    # fresh one is on the last generation's draw, where pass rates differ by the draw, not
    # by noise) and takes its fresh avg_interval.
    timed = {ind: np.array([known[ind][0][0], fresh_of[h][1]]) for ind, h, _ in survivors}
    lost_timing = {f"{m:g}": sum(any(j != ind and n >= need and better_by(mean, timed[ind], m / unit)
                                     for j, (mean, n) in known.items())
                                 for ind, _, _ in survivors if ind in members)
                   for m in [0.0, *margins]}
    return {"arm": arm, "seed": seed, "front": len(members), "survivors": len(survivors),
            "distinct_genomes": len(hashes), "spent": int(spent), "generations": int(last) + 1,
            "displaced": displaced, "lost_place": lost, "lost_place_timing": lost_timing,
            "stored": {ind: [*known[ind][0].tolist(), known[ind][1]] for ind, _, _ in survivors},
            "fresh": {ind: [*fresh_of[h].tolist(), ind in members] for ind, h, _ in survivors}}


def false_elites_towers(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    margins = sorted({args.delta, *args.margins})
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for arm in args.arms:
            d = args.delta / (1e-3 * REFERENCE_MS) if arm == "calibrated" else args.delta
            run_dir, seconds = run(root, f"{arm}-{seed}", tower_config(arm, seed, args.budget, args.pop, args.k, d,
                                                                       args.calibrate_every))
            r = judge_towers(run_dir, arm, seed, args.k, margins, args.calibrate_every)
            r["seconds"] = round(seconds, 1)
            results.append(r)
            print(json.dumps(r), flush=True)
    summary = {}
    for arm in args.arms:
        rs = [r for r in results if r["arm"] == arm]
        summary[arm] = {"runs": len(rs), "evaluations_spent_mean": statistics.mean(r["spent"] for r in rs),
                        "generations_mean": statistics.mean(r["generations"] for r in rs),
                        "seconds_mean": statistics.mean(r["seconds"] for r in rs),
                        "front_members": sum(r["front"] for r in rs),
                        "displaced_by_3_fresh, by margin (s)": {m: sum(r["displaced"][m] for r in rs)
                                                                for m in rs[0]["displaced"]},
                        "lost_place_on_re_evaluation, by margin (s)": {m: sum(r["lost_place"][m] for r in rs)
                                                                       for m in rs[0]["lost_place"]},
                        "lost_place_on_re_evaluation_of_avg_interval, by margin (s)": {
                            m: sum(r["lost_place_timing"][m] for r in rs) for m in rs[0]["lost_place_timing"]},
                        "runs_with_an_empty_reported_front": sum(r["front"] == 0 for r in rs),
                        "runs_with_a_displaced_member": sum(r["displaced"]["0"] > 0 for r in rs)}
    return summary


def overshoot(root: Path, seeds: int) -> dict[str, Any]:
    from evolve.store import Store

    rows: dict[str, list[float]] = {"eval_over": [], "eval_over_reeval": [], "wall_over": [], "gen_s": []}
    for seed in range(seeds):
        for key, replicates in (("eval_over", 1), ("eval_over_reeval", 3)):
            run_dir, _ = run(root, f"ov-{key}-{seed}", config(seed, {"evaluations": 250}, 0.1, replicates, 16))
            with Store.open(run_dir, read_only=True) as store:
                rows[key].append(store.query("SELECT max(evaluations) FROM spend")[0][0] - 250)
        # wall: population 200 on plain ZDT1 (30 variables), 0.5 s of engine time allowed
        data = config(seed, {"wall_seconds": 0.5}, 0.0, 1, 200)
        data["species"] = {"name": "numeric", "params": {"problem": "zdt1"}}
        run_dir, _ = run(root, f"ov-wall-{seed}", data)
        with Store.open(run_dir, read_only=True) as store:
            spent, gens = store.query("SELECT max(wall_seconds), count(*) FROM spend")[0]
        rows["wall_over"].append(spent - 0.5)
        rows["gen_s"].append(spent / gens)
    return {k: {"mean": statistics.mean(v), "max": max(v)} for k, v in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=600)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--pop", type=int, default=16)
    parser.add_argument("--delta", type=float, default=0.1, help="min_delta of the guarded arm, and the margin "
                        "a fresh mean must beat a member by to count as displacing it beyond delta")
    parser.add_argument("--towers", action="store_true", help="the issue's setting: towers, avg_interval@h2")
    parser.add_argument("--k", type=int, default=4, help="towers: train tasks per evaluation")
    parser.add_argument("--arms", type=lambda v: v.split(","), default=list(TOWER_ARMS), help="towers: arms")
    parser.add_argument("--first-seed", type=int, default=1, help="towers: run seeds first-seed ..")
    parser.add_argument("--calibrate-every", type=float, default=120.0, help="towers: the calibrated arm's")
    parser.add_argument("--margins", type=lambda v: [float(x) for x in v.split(",")], default=[],
                        help="towers: also count displacements by these margins (raw seconds)")
    args = parser.parse_args()
    print(machine())
    if args.towers:
        with tempfile.TemporaryDirectory(prefix="bench-fe-", dir="/tmp") as tmp:
            os.chmod(tmp, 0o755)  # sandboxes drop to an unprivileged user who must reach them
            print(json.dumps(false_elites_towers(Path(tmp), args), indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        result = {"false_elites": false_elites(root, args.seeds, args.budget, args.noise, args.pop, args.delta),
                  "overshoot": overshoot(root, min(args.seeds, 5))}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
