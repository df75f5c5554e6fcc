"""The accordion species' costs: one trial per sampled genome, and the driver's corpus build.

    .venv/bin/python benchmarks/bench_accordion_species.py --trials 8 --trajectories runs/quickstart/trajectories

- trials: `AccordionSpecies.evaluate` (one CPU thread, as on a trainer actor) for the
  reference genome and `--trials - 1` genomes sampled from the default space, on the
  cold-start corpus: wall seconds per trial, and the spread of the objectives;
- corpus: `AccordionSpecies.context` over every trajectory under `--trajectories`, first
  read (git) and again (cached), with the bytes shipped to the trainer actors.
"""
from __future__ import annotations

import argparse
import pickle
import statistics
import time
from pathlib import Path

import numpy as np

from populations.accordion import AccordionSpecies
from populations.base import EvalItem, Product


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trajectories", type=Path, help="a run's trajectories/ folder (tower repositories)")
    args = ap.parse_args()

    species = AccordionSpecies(keep_checkpoints=False)
    genomes = species.sample(args.trials, np.random.default_rng(args.seed))
    rows = []
    for k, g in enumerate(genomes):
        t = time.perf_counter()
        out = species.evaluate([EvalItem(f"b{k}", g, species.hash(g), args.seed + k)], workdir=Path("/tmp"),
                               timeout=600, run_id="bench")[0]
        wall = time.perf_counter() - t
        m = out.metrics
        rows.append((wall, m))
        print(f"{species.describe(g):48s} {out.status:6s} {wall:6.2f}s  bpb {m.get('val_bpb', float('nan')):.3f}  "
              f"s/Mtok {m.get('sec_per_mtok', float('nan')):.2f}  bytes {m.get('param_bytes')}  "
              f"bypass {m.get('bypass_rate', float('nan')):.2f}  div/tol {m.get('divergence_ratio', float('nan')):.3g}")
    walls = [w for w, _ in rows[1:]] or [rows[0][0]]  # the first trial also pays torch's imports
    print(f"trial wall seconds (after the first): median {statistics.median(walls):.2f}, "
          f"min {min(walls):.2f}, max {max(walls):.2f}; first {rows[0][0]:.2f}")
    feasible = sum(m.get("divergence_ratio", np.inf) <= 1.0 for _, m in rows)
    print(f"feasible (divergence_ratio <= 1): {feasible} of {len(rows)}")

    if args.trajectories:
        repos = sorted(p for p in args.trajectories.iterdir() if (p / ".git").exists())
        products = [Product("tower", p.name, 0, p.resolve()) for p in repos]
        t = time.perf_counter()
        ctx = species.context(1, products)
        first = time.perf_counter() - t
        t = time.perf_counter()
        species.context(1, products)
        again = time.perf_counter() - t
        shipped = len(pickle.dumps(ctx, protocol=5))
        print(f"corpus of {len(repos)} trajectories: built in {first:.3f}s (git), {again:.4f}s cached; "
              f"{ctx.summary['corpus_bytes']} bytes of text, {shipped} bytes pickled for the object store; "
              f"{ctx.summary['corpus_heldout_trajectories']} trajectories held out")


if __name__ == "__main__":
    main()
