"""Whole-process cost of `evolve eval` per recorded key: this checkout vs an earlier commit.

Each run is `python -m evolve.cli eval GENOME --depth N --json` in a fresh process (start-up,
sandbox, every level, scoring, delivery), timed from outside; the result's commit counts
give ms per recorded key. The two checkouts are measured interleaved so that machine noise
hits both alike. The earlier checkout is made with `git worktree add` (nothing is copied
into this repository) and run with this virtual environment.

Run: .venv/bin/python benchmarks/bench_eval.py [--before 9ec6c40] [--repeats 5] [--depth 3]
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


def one(checkout: Path, genome: Path, depth: int) -> tuple[float, int, str]:
    """(seconds, recorded keys, status) of one `evolve eval` of `checkout`."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        env = dict(os.environ, PYTHONPATH=str(checkout))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "evolve.cli", "eval", str(genome), "--depth", str(depth),
                               "--out", f"{tmp}/o", "--json"], cwd=checkout, env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t0
    text = proc.stdout
    result = json.loads(text[text.index("{"):])
    keys = sum(v for k, v in result["metrics"].items() if k.startswith("commits@") and isinstance(v, int))
    return dt, keys, result["status"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="9ec6c40", help="the earlier commit to compare with")
    ap.add_argument("--genome", default=str(ROOT / "populations/seeds/kernel_line.json"))
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    before = Path(tempfile.mkdtemp(prefix="bench-before-", dir="/tmp"))
    before.chmod(0o755)  # sandbox users must reach the op library in it
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "-q", str(before), args.before], check=True)
    try:
        runs: dict[str, list[tuple[float, int, str]]] = {"before": [], "now": []}
        one(ROOT, Path(args.genome), args.depth)  # warm the page cache for both
        one(before, Path(args.genome), args.depth)
        for _ in range(args.repeats):
            runs["before"].append(one(before, Path(args.genome), args.depth))
            runs["now"].append(one(ROOT, Path(args.genome), args.depth))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {Path(args.genome).name} depth {args.depth}, {args.repeats} runs each")
    per_key = {}
    for name, rs in runs.items():
        secs = statistics.median(r[0] for r in rs)
        keys = statistics.median(r[1] for r in rs)
        per_key[name] = secs / keys * 1000
        print(f"  {name:7s} ({args.before if name == 'before' else 'HEAD'}): {secs:.3f} s per evaluation, "
              f"{keys:.0f} recorded keys, {per_key[name]:.3f} ms/key, status {sorted({r[2] for r in rs})}")
    print(f"  change per recorded key: {100 * (per_key['now'] / per_key['before'] - 1):+.1f} %")


if __name__ == "__main__":
    main()
