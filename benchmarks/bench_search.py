"""Does the search beat random search at equal budget? Arms on the built-in shell suite, from the seeds.

Arms, each with the same number of evaluations per run (`--budget`) and several run seeds:

- `random`: samples and mutants of the seeds (every operator, graph edits included), no
  selection (one generation of `budget` individuals: the seed genomes, then mutants of them,
  all distinct);
- `nsga2`: NSGA-II with field/row variation only (population `--population`, generations
  budget / population);
- `graph`: NSGA-II with field/row and graph variation (graph edits, subgraph exchange);
- `reflect`: as `graph` + learning inside the run (credit 0.3) + reflective mutation with the
  offline `retrieval` backend (half the mutations; a reflective child answers up to 4 of its
  parent's failed tasks);
- `llama` (with `--llama URL`): as `reflect`, the `openai` backend on that endpoint (e.g. a
  llama.cpp server with the SmolLM2 GGUF: `python -m llama_cpp.server --model M --port 8000`).

Every run selects on `task_pass_rate` over k train tasks per evaluation (plus how H2 types:
`max_diff_len@h2`); every new front member is evaluated on the 20 validation tasks (stored,
never selected on). Reported per arm: the best validation pass rate on any front (mean ± sd over
seeds) and its two halves (`near`: new instances of train tasks; `far`: skills train never
shows), the test pass rate of that individual (`evolve test`, 20 tasks), the best train pass
rate, and the curve of best validation pass rate against evaluations spent (PNG).

Run: .venv/bin/python benchmarks/bench_search.py [--budget 48] [--seeds 3] [--arms random,nsga2,graph,reflect]
                                                   [--llama http://127.0.0.1:8000/v1] [--png benchmarks/search.png]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def config(arm: str, seed: int, budget: int, population: int, k: int, llama: str | None) -> dict[str, object]:
    from populations.tower import GRAPH_OPERATORS, MUTATIONS

    params: dict[str, object] = {"depth": 2, "tasks": k}
    if arm == "nsga2":  # field and row variation only
        params.update(mutations={m: w for m, w in MUTATIONS.items() if m not in GRAPH_OPERATORS}, graph_crossover=0.0)
    if arm in ("reflect", "llama"):
        params.update(credit=0.3, reflection=0.5, reflection_rows=4,
                      reflection_backend="openai" if arm == "llama" else "retrieval")
    size, generations = (budget, 1) if arm == "random" else (population, max(1, budget // population))
    cfg: dict[str, object] = {
        "name": f"{arm}-{seed}", "seed": seed, "generations": generations,
        "species": {"name": "tower", "params": params},
        "population": {"size": size},
        "objectives": [{"metric": "task_pass_rate", "direction": "max", "ref": 0.0},
                       {"metric": "max_diff_len@h2", "direction": "min", "ref": 2000}],
        "evaluation": {"timeout": 180, "actors": 2},
        "ray": {"num_cpus": 2}}
    if arm == "llama":
        cfg["experts"] = {"openai": {"base_url": llama, "model": "smollm2", "timeout": 60, "retries": 1}}
    return cfg


def one_run(arm: str, seed: int, args: argparse.Namespace, root: Path) -> dict[str, object]:
    return measure(arm, seed, config(arm, seed, args.budget, args.population, args.k, args.llama), root)


def measure(arm: str, seed: int, data: dict[str, object], root: Path, test: bool = True) -> dict[str, object]:
    """Run one config and read what the tables say: best validation pass rate (and the test pass
    rate of that individual unless `test` is off), its curve, the last front's hypervolume and
    distinct points."""
    from evolve.config import parse_config, resolve
    from evolve.loop import run_evolution
    from evolve.runs import create_run
    from evolve.store import Store

    resolved = resolve(parse_config(data))
    run_id, run_dir = create_run(resolved, root, run_id=f"{arm}-{seed}")
    t0 = time.perf_counter()
    run_evolution(resolved, run_id, run_dir)
    wall = time.perf_counter() - t0
    with Store.open(run_dir, read_only=True) as store:
        gens = store.query("SELECT generation, evaluations FROM generations ORDER BY generation")
        held = store.query("""SELECT h.individual_id, h.generation, h.pass_rate FROM held_out h
                              WHERE h.split = 'validation' ORDER BY h.pass_rate DESC, h.individual_id""")
        halves = dict(store.query("""SELECT starts_with(task_id, 'near-'), avg(passed::INT) FROM task_results
                                     WHERE split = 'validation' AND individual_id = ? GROUP BY 1""",
                                  [held[0][0] if held else ""]))
        train = store.query("SELECT max((metrics ->> 'task_pass_rate')::DOUBLE) FROM evaluations")[0][0]
        proposals = store.query("SELECT count(*), count(row), sum(used::INT) FROM proposals")[0]
        hv, points = store.query("SELECT hypervolume, front_points FROM generations ORDER BY generation DESC "
                                 "LIMIT 1")[0]
    spent, curve, best = 0, [], 0.0
    for g, n in gens:
        spent += n
        best = max([best] + [r[2] for r in held if r[1] <= g])
        curve.append((spent, best))
    top = held[0][0] if held else None
    test = None
    if top is not None and test:  # the best on validation, on the test split (never selected on)
        proc = subprocess.run([sys.executable, "-m", "evolve.cli", "test", str(run_dir), top], cwd=ROOT,
                              capture_output=True, text=True, timeout=1800, check=False)
        if proc.returncode == 0:
            with Store.open(run_dir, read_only=True) as store:
                test = store.query("SELECT pass_rate FROM held_out WHERE split = 'test' AND individual_id = ?",
                                   [top])[0][0]
    return {"arm": arm, "seed": seed, "evaluations": spent, "validation": best, "test": test, "train": train,
            "near": halves.get(True, 0.0), "far": halves.get(False, 0.0),
            "best": top, "curve": curve, "wall_s": round(wall, 1), "hypervolume": hv, "front_points": points,
            "proposals": {"made": proposals[0], "rows": proposals[1], "used": proposals[2] or 0}}


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def plot(results: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for arm in dict.fromkeys(str(r["arm"]) for r in results):
        for r in (r for r in results if r["arm"] == arm):
            xs, ys = zip(*r["curve"]) if r["curve"] else ((), ())  # type: ignore[misc]
            ax.step(xs, ys, where="post", alpha=0.7, label=arm if r["seed"] == 1 else None)
    ax.set_xlabel("evaluations spent")
    ax.set_ylabel("best validation pass rate so far")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    ax.set_title("search vs random search, built-in shell suite")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=int, default=48, help="evaluations per run")
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--k", type=int, default=8, help="train tasks per evaluation")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=1, help="run seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--arms", default="random,nsga2,graph,reflect")
    ap.add_argument("--llama", help="an OpenAI-compatible endpoint for the llama arm")
    ap.add_argument("--png", default=str(ROOT / "benchmarks" / "search.png"))
    ap.add_argument("--json", help="write every run's result here")
    ap.add_argument("--from-json", nargs="+", help="summarise (table, PNG) the results these --json files hold")
    args = ap.parse_args()
    arms = args.arms.split(",") + (["llama"] if args.llama and "llama" not in args.arms else [])
    print(f"machine: {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()}; "
          f"budget {args.budget} evaluations, k {args.k}, seeds {args.first_seed}.."
          f"{args.first_seed + args.seeds - 1}, arms {', '.join(arms)}", flush=True)
    results: list[dict[str, object]] = []
    if args.from_json:  # runs made before (several invocations): summarised together
        for path in args.from_json:
            results.extend(json.loads(Path(path).read_text(encoding="utf-8")))
        arms = list(dict.fromkeys(str(r["arm"]) for r in results))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-search-", dir="/tmp") as tmp:
            os.chmod(tmp, 0o755)
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for arm in arms:
                    r = one_run(arm, seed, args, Path(tmp))
                    results.append(r)
                    print(json.dumps(r), flush=True)
    print("\n| arm | best validation pass rate (mean ± sd) | near / far | its test pass rate | best train pass rate | "
          "proposals (made / rows / used) |")
    print("|---|---|---|---|---|---|")
    for arm in arms:
        mine = [r for r in results if r["arm"] == arm]
        made = [r["proposals"] for r in mine]  # type: ignore[misc]
        print(f"| {arm} | {summary([float(r['validation']) for r in mine])} | "  # type: ignore[arg-type]
              f"{summary([float(r['near']) for r in mine])} / "  # type: ignore[arg-type]
              f"{summary([float(r['far']) for r in mine])} | "  # type: ignore[arg-type]
              f"{summary([float(r['test']) for r in mine if r['test'] is not None])} | "  # type: ignore[arg-type]
              f"{summary([float(r['train'] or 0) for r in mine])} | "  # type: ignore[arg-type]
              f"{sum(p['made'] for p in made)} / {sum(p['rows'] for p in made)} / {sum(p['used'] for p in made)} |")
    plot(results, Path(args.png))
    print(f"\ncurve: {args.png}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
