"""Report benchmarks on a 150-generation ZDT1 run (`configs/zdt1.yaml`, population 100).

1. `lineage(individual)` of one individual of generation 40, 80 and 149: the store's macro
   (breadth first, each ancestor expanded once) against the naive recursive query it
   replaced (every path to every ancestor followed, parents matched with `list_contains`);
   the naive one is skipped past `--naive-limit` seconds of its previous answer.
2. `evolve report RUN --out DIR` as a user runs it: wall time and peak memory of the
   process (the figures written, what each took).

    .venv/bin/python benchmarks/bench_report.py [--run RUN_DIR] [--naive-limit 60]

Without --run, `evolve run configs/zdt1.yaml` is run once into a temporary directory.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAIVE_LINEAGE = """
CREATE OR REPLACE TEMP MACRO naive_lineage(ind) AS TABLE
WITH RECURSIVE anc(run_id, individual_id, depth) AS (
    SELECT run_id, individual_id, 0 FROM individuals WHERE individual_id = ind
    UNION
    SELECT p.run_id, p.individual_id, a.depth + 1
    FROM anc a
    JOIN individuals c ON c.run_id = a.run_id AND c.individual_id = a.individual_id
    JOIN individuals p ON p.run_id = c.run_id AND list_contains(c.parents, p.individual_id)
)
SELECT min(a.depth) AS depth, a.individual_id, i.generation, i.origin, i.parents, i.hash, i.run_id
FROM anc a JOIN individuals i ON i.run_id = a.run_id AND i.individual_id = a.individual_id
GROUP BY ALL
ORDER BY depth, a.individual_id
"""


def machine() -> str:
    import os

    load = os.getloadavg()[0]
    return (f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}, "
            f"load average {load:.1f} at the start")


def zdt1_run(tmp: Path) -> Path:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(ROOT / "configs" / "zdt1.yaml"), "--out",
                    str(tmp), "--run-id", "zdt1", "--quiet"], cwd=ROOT, check=True, capture_output=True)
    print(f"evolve run configs/zdt1.yaml: {time.perf_counter() - t:.1f} s")
    return tmp / "zdt1"


def bench_lineage(run: Path, naive_limit: float) -> None:
    import duckdb

    con = duckdb.connect(str(run / "store.duckdb"), read_only=True)
    con.execute(NAIVE_LINEAGE)
    print("\n| generation | ancestors | lineage() (ours) s | naive recursive query s |\n|---:|---:|---:|---:|")
    naive_last = 0.0
    for g in (40, 80, 149):
        ind = con.execute("SELECT min(individual_id) FROM individuals WHERE generation = ?", [g]).fetchone()
        assert ind is not None
        t = time.perf_counter()
        ours = con.execute("SELECT depth, individual_id FROM lineage(?)", [ind[0]]).fetchall()
        t_ours = time.perf_counter() - t
        naive = "skipped"
        if naive_last <= naive_limit:
            t = time.perf_counter()
            theirs = con.execute("SELECT depth, individual_id FROM naive_lineage(?)", [ind[0]]).fetchall()
            naive_last = time.perf_counter() - t
            assert theirs == ours, "the two queries disagree"
            naive = f"{naive_last:.2f}"
        print(f"| {g} ({ind[0]}) | {len(ours) - 1} | {t_ours:.3f} | {naive} |")
    con.close()


def bench_report(run: Path, out: Path) -> None:
    """Wall time and peak RSS of the `evolve report` process alone (its own rusage, wait4)."""
    import os

    log = out.parent / "report.log"
    t = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "evolve.cli", "report", str(run), "--out", str(out)],
                                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    assert os.waitstatus_to_exitcode(status) == 0, log.read_text()
    written = [Path(line).name for line in log.read_text().split()]
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"\nevolve report: {wall:.1f} s wall, {usage.ru_utime + usage.ru_stime:.1f} s CPU, "
          f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB; {len(written)} files, {size:.1f} MB: {', '.join(written)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="an existing ZDT1 run directory (default: make one)")
    parser.add_argument("--naive-limit", type=float, default=60.0,
                        help="skip the naive query once one answer took longer than this (s)")
    args = parser.parse_args()
    print(machine())
    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        run = args.run or zdt1_run(tmp / "runs")
        bench_report(run, tmp / "report")
        bench_lineage(run, args.naive_limit)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
