"""Import time of the op library harness programs use, side by side with the floor
(an interpreter that imports nothing) and the naive way (a harness importing the
platform's heavy side, here `harness_tower.evaluate` with GitPython and libtmux behind it).

Run: .venv/bin/python benchmarks/bench_import.py [--runs 30]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
PY = os.path.realpath(sys.executable)  # the base interpreter, as in a sandbox (no venv site)


def wall(code: str, runs: int, env: dict[str, str]) -> float:
    probe = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    times = [float(subprocess.run([PY, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout)
             for _ in range(runs)]
    return statistics.median(times) * 1000


def process(code: str, runs: int, env: dict[str, str], python: str = PY) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([python, "-c", code], env=env, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    sandbox_env = {"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"}
    venv_env = dict(os.environ, PYTHONPATH=ROOT)
    ft = wall("import harness_tower.ft", args.runs, sandbox_env)
    print(f"import harness_tower.ft (in-process):   {ft:7.2f} ms  (target < 50 ms)")
    floor = process("pass", args.runs, sandbox_env)
    with_ft = process("import harness_tower.ft", args.runs, sandbox_env)
    print(f"interpreter start, nothing imported:    {floor:7.2f} ms")
    print(f"interpreter start + op library:         {with_ft:7.2f} ms  ({with_ft / floor:.2f}x the floor)")
    naive = process("import harness_tower.evaluate", max(5, args.runs // 3), venv_env, sys.executable)
    print(f"interpreter start + heavy side (naive): {naive:7.2f} ms  ({naive / floor:.2f}x the floor)")


if __name__ == "__main__":
    main()
