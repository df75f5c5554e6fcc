"""Reading a live run, and joining a Ray cluster that is not there.

1. What publishing the read copy costs the writer (`Store.publish`: checkpoint, copy,
   rename after each commit), on `configs/zdt1.yaml` (150 generations of 100, evaluated in
   the driver): the engine with publishing against the same engine with it switched off,
   interleaved; the cost of one publish as the store grows; and the naive copy DuckDB
   offers of itself (`ATTACH` + `COPY FROM DATABASE`) on the final store, for comparison.
2. `evolve status RUN` (a fresh process, as a person types it) on a live run — held in its
   generation 1 by the test species `tests.inspect.gated_species` — against the same run
   once finished, and `evolve sql RUN QUERY` on the live run.
3. The time `evolve run --address` takes to print its one line for an address where nothing
   listens, against `ray.init(address=...)` on the same address (what the driver did before),
   cut off at `--init-limit` seconds.

    .venv/bin/python benchmarks/bench_live.py [--repeats 3] [--init-limit 60]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
            f"load average {load[0]:.1f} at start")


def publishing(repeats: int, root: Path) -> dict[str, Any]:
    """ZDT1 with and without publishing; each publish's seconds and the copy's size."""
    from evolve.config import load_config, resolve
    from evolve.loop import run_evolution
    from evolve.store import Store

    real = Store.publish
    calls: list[tuple[float, int]] = []

    def timed(self: Store) -> None:
        t = time.perf_counter()
        real(self)
        calls.append((time.perf_counter() - t, self.path.stat().st_size))

    def off(self: Store) -> None:
        return None

    from evolve.runs import create_run

    walls: dict[str, list[float]] = {"publishing": [], "not publishing": []}
    for rep in range(repeats):
        for name, method in (("publishing", timed), ("not publishing", off)):
            resolved = resolve(load_config(ROOT / "configs" / "zdt1.yaml"))
            run_id, run_dir = create_run(resolved, root / name.replace(" ", "-"), run_id=f"z{rep}")
            Store.publish = method  # type: ignore[method-assign]
            try:
                t = time.perf_counter()
                run_evolution(resolved, run_id, run_dir)
                walls[name].append(time.perf_counter() - t)
            finally:
                Store.publish = real  # type: ignore[method-assign]
    per_run = len(calls) // repeats
    first, last = calls[:per_run][0], calls[:per_run][-1]
    final = root / "publishing" / "z0"
    naive = copy_from_database(final / "store.duckdb", root / "naive.duckdb")
    return {"walls": walls, "publishes_per_run": per_run, "generations": 150,
            "publish_ms": [1000 * s for s, _ in calls], "first": first, "last": last, "naive_s": naive}


def copy_from_database(store: Path, target: Path) -> float:
    import duckdb

    con = duckdb.connect(str(store))
    t = time.perf_counter()
    con.execute(f"ATTACH '{target}' AS snap")
    con.execute(f"COPY FROM DATABASE {store.stem} TO snap")
    con.execute("DETACH snap")
    took = time.perf_counter() - t
    con.close()
    return took


def evolve(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    got = subprocess.run([sys.executable, "-m", "evolve.cli", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    return time.perf_counter() - t, got


def live_status(repeats: int, root: Path) -> dict[str, list[float]]:
    import yaml

    from evolve.store import Store

    gate, runs = root / "gate", root / "live-runs"
    config = root / "live.yaml"
    config.write_text(yaml.safe_dump({
        "name": "live", "seed": 3, "generations": 3,
        "species": {"name": "tests.inspect.gated_species:GatedNumeric",
                    "params": {"problem": "zdt1", "n_var": 6, "gate": str(gate)}},
        "population": {"size": 6},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
        "evaluation": {"timeout": 30, "actors": 0}}))
    run = subprocess.Popen([sys.executable, "-m", "evolve.cli", "run", str(config), "--runs", str(runs),
                            "--run-id", "live", "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    out: dict[str, list[float]] = {"status, live": [], "sql, live": [], "status, finished": []}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with Store.open(runs / "live", read_only=True) as store:
                    if store.live and store.last_generation("live") == 0:
                        break
            except Exception:  # noqa: BLE001 - not there yet
                pass
            time.sleep(0.1)
        for _ in range(repeats):
            took, got = evolve("status", "--runs", str(runs), "live")
            assert got.returncode == 0 and "live: generation 0" in got.stdout, got.stderr
            out["status, live"].append(took)
            took, got = evolve("sql", "--runs", str(runs), "live", "SELECT count(*) FROM evaluations")
            assert got.returncode == 0 and got.stderr.startswith("live: generation 0"), got.stderr
            out["sql, live"].append(took)
    finally:
        gate.touch()
        run.wait(timeout=120)
    for _ in range(repeats):
        took, got = evolve("status", "--runs", str(runs), "live")
        assert got.returncode == 0 and "finished" in got.stdout, got.stderr
        out["status, finished"].append(took)
    return out


def wrong_address(repeats: int, limit: float, root: Path) -> dict[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT))
    ours = []
    for k in range(repeats):
        t = time.perf_counter()
        got = subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(ROOT / "configs" / "zdt1.yaml"),
                              "--runs", str(root / f"w{k}"), "--address", address], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        ours.append(time.perf_counter() - t)
        assert got.returncode == 2 and got.stderr.count("\n") == 1, got.stderr
    code = f"import ray; ray.init(address={address!r}, log_to_driver=False, configure_logging=False)"
    t = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=limit)
        naive: float | None = time.perf_counter() - t
    except subprocess.TimeoutExpired:
        naive = None
    return {"ours": ours, "naive": naive, "limit": limit, "line": got.stderr.strip()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--init-limit", type=float, default=60.0)
    args = ap.parse_args()
    print(machine())
    root = Path(tempfile.mkdtemp(prefix="bench-live-"))
    try:
        pub = publishing(args.repeats, root)
        walls = {k: statistics.median(v) for k, v in pub["walls"].items()}
        print(f"\nZDT1 150 x 100 in the driver, median of {args.repeats}:")
        for name, wall in walls.items():
            print(f"  {name:15s} {wall:.2f} s")
        ms = pub["publish_ms"]
        n = pub["publishes_per_run"]
        print(f"  publishes per run {n} (one per commit), per publish median {statistics.median(ms):.1f} ms, "
              f"max {max(ms):.1f} ms; first {1000 * pub['first'][0]:.1f} ms at {pub['first'][1] / 1e6:.1f} MB, "
              f"last {1000 * pub['last'][0]:.1f} ms at {pub['last'][1] / 1e6:.1f} MB")
        print(f"  publishing per generation {sum(ms) / len(ms) * n / pub['generations']:.2f} ms; "
              f"run time +{100 * (walls['publishing'] / walls['not publishing'] - 1):.1f} %")
        print(f"  naive copy of the final store (ATTACH + COPY FROM DATABASE): {1000 * pub['naive_s']:.0f} ms")

        live = live_status(args.repeats, root)
        print("\nevolve status / sql as a fresh process (median):")
        for name, v in live.items():
            print(f"  {name:18s} {statistics.median(v):.2f} s")

        wrong = wrong_address(args.repeats, args.init_limit, root)
        print("\nwrong address (nothing listens there):")
        print(f"  evolve run --address, to its one line: median {statistics.median(wrong['ours']):.2f} s")
        naive = wrong["naive"]
        print("  ray.init(address=...) alone: " + (f"{naive:.1f} s" if naive is not None else
                                                   f"still trying after {wrong['limit']:.0f} s (cut off)"))
        print(f"  the line: {wrong['line']}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
