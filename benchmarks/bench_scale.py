"""How far the driver scales: its own time per generation against population size, and what
one evaluation's round trip through Ray costs it.

1. Driver time (every engine phase but the species' evaluation) per generation for
   populations of 100, 300 and 1,000 on ZDT1 (30 variables) evaluated in the driver
   (`evaluation.actors: 0`: the evaluation itself is microseconds of numpy), 10
   generations, checkpoint and commit as the default cadence says.
2. The round trip of one evaluation through Ray actors: `slow_numeric` with no delay and
   one individual per actor call (`batch_size 1`, as towers are), 2 actors, population
   100, 3 generations: the evaluate phase over the evaluations it ran is the driver's cost
   per remote evaluation (submit, wait, fetch, receive, stage).

From the two, the largest cluster one driver keeps busy: an evaluation of E seconds on N
actors needs the driver to spend less than E / N per evaluation.

    .venv/bin/python benchmarks/bench_scale.py [--generations 10]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
            f"load average {load[0]:.1f} at start")


def run(root: Path, run_id: str, data: dict[str, Any]) -> dict[str, float]:
    from evolve.config import parse_config, resolve
    from evolve.loop import run_evolution
    from evolve.runs import create_run

    resolved = resolve(parse_config(data))
    _, run_dir = create_run(resolved, root, run_id=run_id)
    return run_evolution(resolved, run_id, run_dir).timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=10)
    args = parser.parse_args()
    print(machine())
    out: dict[str, Any] = {"driver": {}, "ray": {}}
    base = {"name": "scale", "seed": 1, "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}]}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for pop in (100, 300, 1000):
            t = run(root, f"d{pop}", {**base, "generations": args.generations,
                                      "species": {"name": "numeric", "params": {"problem": "zdt1"}},
                                      "population": {"size": pop}, "evaluation": {"actors": 0}})
            driver = sum(t.values()) - t["evaluate"]
            out["driver"][pop] = {"per_generation_s": driver / args.generations,
                                  "per_individual_ms": 1000 * driver / args.generations / pop,
                                  "phases_s": {k: round(v, 3) for k, v in t.items()}}
        import ray.cloudpickle

        from tests.evolve import slow_species

        ray.cloudpickle.register_pickle_by_value(slow_species)
        gens, pop = 3, 100
        t = run(root, "ray", {**base, "generations": gens,
                              "species": {"name": "tests.evolve.slow_species:SlowNumeric",
                                          "params": {"delay": 0.0, "problem": "zdt1"}},
                              "population": {"size": pop}, "evaluation": {"actors": 2, "timeout": 60},
                              "ray": {"num_cpus": 2}})
        out["ray"] = {"evaluations": gens * pop, "evaluate_s": t["evaluate"],
                      "per_evaluation_ms": 1000 * t["evaluate"] / (gens * pop)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
