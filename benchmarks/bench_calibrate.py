"""Does calibration take the node's load out of a timing objective? The reference tower
against the CPU loop it replaced.

The same two tower genomes (`literal_line`, `kernel_statement`; depth 2, the first 4 tasks of
the built-in shell suite's train split) are evaluated under two conditions of one machine:
`quiet` (nothing else started) and `loaded` (`--hogs` busy-looping processes beside them).
Before each evaluation both references are taken: the reference tower
(`TowerSpecies.reference_timing`, what `evaluation.calibrate` uses) and a fixed CPU loop
(blake2b over 1 MiB + a pure-Python loop, best of three: the first version's reference). For
`avg_interval@h2` raw, divided by the tower reference and divided by the CPU reference:
the ratio loaded / quiet of the means (1.0 = the load taken out entirely) and the
coefficient of variation within each condition (the noise calibration adds).

    .venv/bin/python benchmarks/bench_calibrate.py [--repeats 5] [--hogs 2]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_BUFFER = bytes(range(256)) * 4096  # 1 MiB


def cpu_reference() -> float:
    """The first version's reference: a fixed CPU loop, best of three."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        digest = b""
        for _ in range(16):
            digest = hashlib.blake2b(_BUFFER + digest).digest()
        total = 0
        for k in range(200_000):
            total += k * k % 7
        best = min(best, time.perf_counter() - start)
    return best


def hog() -> None:
    while True:
        pass


def condition(species: Any, genomes: list[Any], repeats: int, work: Path) -> list[dict[str, float]]:
    from populations.base import EvalItem

    context = {"suite": "shell", "split": "train", "tasks": [t.id for t in species.suite.split("train")[:4]],
               "trajectory": False}
    rows = []
    for rep in range(repeats):
        for name, genome in genomes:
            cpu = cpu_reference()
            tower = species.reference_timing(work)
            out = species.evaluate([EvalItem(f"{name}-{rep}", genome, "", rep, context)], workdir=work,
                                   timeout=120, run_id="calibrate")[0]
            raw = out.metrics.get("avg_interval@h2")
            if out.status != "ok" or raw is None or tower is None:
                continue
            rows.append({"genome": name, "raw": raw, "tower": raw / tower, "cpu": raw / cpu})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hogs", type=int, default=2, help="busy-looping processes in the loaded condition")
    args = parser.parse_args()
    from populations.tower import TowerSpecies

    load = os.getloadavg()[0]
    print(f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
          f"load average {load:.1f} at start", flush=True)
    species = TowerSpecies(depth=2, tasks=4, seeds=["literal_line", "kernel_statement"])
    genomes = list(zip(species.seed_names, species.seed_genomes))
    work = Path(tempfile.mkdtemp(prefix="bench-calibrate-", dir="/tmp"))
    os.chmod(work, 0o755)
    results: dict[str, list[dict[str, float]]] = {"quiet": condition(species, genomes, args.repeats, work)}
    hogs = [multiprocessing.Process(target=hog, daemon=True) for _ in range(args.hogs)]
    for h in hogs:
        h.start()
    try:
        results["loaded"] = condition(species, genomes, args.repeats, work)
    finally:
        for h in hogs:
            h.terminate()
    table: dict[str, Any] = {}
    for name, _ in genomes:
        for kind in ("raw", "tower", "cpu"):
            means, cvs = {}, {}
            for cond, rows in results.items():
                values = [r[kind] for r in rows if r["genome"] == name]
                means[cond] = statistics.mean(values)
                cvs[cond] = statistics.stdev(values) / means[cond] if len(values) > 1 else 0.0
            table[f"{name} {kind}"] = {"loaded/quiet": means["loaded"] / means["quiet"],
                                       "cv quiet": cvs["quiet"], "cv loaded": cvs["loaded"]}
    print(json.dumps(table, indent=1))
    print("\n| genome | avg_interval@h2 | loaded / quiet | CV quiet | CV loaded |")
    print("|---|---|---:|---:|---:|")
    for key, row in table.items():
        name, kind = key.split()
        label = {"raw": "raw", "tower": "÷ reference tower", "cpu": "÷ CPU loop"}[kind]
        print(f"| {name} | {label} | {row['loaded/quiet']:.2f} | {100 * row['cv quiet']:.0f} % | "
              f"{100 * row['cv loaded']:.0f} % |")


if __name__ == "__main__":
    main()
