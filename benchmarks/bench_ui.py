"""Dashboard benchmarks (`evolve ui`), in Debian's headless Chromium (through Playwright)
against a real `evolve ui` process.

1. First paint on a quickstart-sized run: from navigation start to the front scatter drawn
   (the page's performance mark `scatter-drawn`), a fresh page each time; median of repeats.
2. The heaviest view of a big run (configs/zdt1.yaml: 150 generations x 100): the run page
   at its last generation, then with every earlier evaluation drawn (15,000 points): time
   to draw, the browser's JS heap and DOM nodes (CDP `Performance.getMetrics`), the
   server's peak resident memory; and the page of a last-generation individual.
3. Lineage of one individual of generation G: what its page asks for (four generations of
   ancestors, `evolve.ui.views.lineage`), and the whole ancestry by the same walk (one
   indexed query per generation of ancestry) and by the store's `lineage()` macro.

    .venv/bin/python benchmarks/bench_ui.py --quickstart RUN_DIR --big RUN_DIR [--repeats 5] [--lineage-only]

Without --big, configs/zdt1.yaml is run first (about 10 s); --quickstart is required (a
run of configs/quickstart.yaml, a few minutes: `evolve run configs/quickstart.yaml`).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
            f"load average {load[0]:.1f} at start")


def serve(runs: list[Path]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "evolve.cli", "ui", *map(str, runs), "--port", "0"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not found:
        raise SystemExit(f"evolve ui did not start: {line}{proc.stderr.read()}")
    return proc, found.group(0)


def peak_rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def scatter_marks(page: Any) -> list[float]:
    return [float(t) for t in page.evaluate(
        "performance.getEntriesByName('scatter-drawn').map(e => e.startTime)")]


def first_paint(browser: Any, base: str, run: str, repeats: int) -> dict[str, float]:
    paints, loads = [], []
    for _ in range(repeats):
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{base}/run/{run}")
        page.wait_for_function("performance.getEntriesByName('scatter-drawn').length > 0", timeout=60_000)
        paints.append(scatter_marks(page)[0])
        loads.append(float(page.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")))
        page.close()
    return {"scatter_ms": statistics.median(paints), "scatter_min_ms": min(paints),
            "dom_ready_ms": statistics.median(loads)}


def heavy(browser: Any, base: str, run: str, ind: str, server_pid: int, repeats: int) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for _ in range(repeats):
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(f"{base}/run/{run}")
        page.wait_for_function("performance.getEntriesByName('scatter-drawn').length > 0", timeout=60_000)
        out.setdefault("page_scatter_ms", []).append(scatter_marks(page)[0])
        t0 = float(page.evaluate("performance.now()"))
        page.click("#earlier")
        page.wait_for_function("performance.getEntriesByName('scatter-drawn').length > 1", timeout=120_000)
        out.setdefault("all_points_ms", []).append(scatter_marks(page)[-1] - t0)
        out.setdefault("markers", []).append(float(page.locator("svg#scatter").get_attribute("data-markers") or 0))
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        out.setdefault("js_heap_mib", []).append(metrics["JSHeapUsedSize"] / 2 ** 20)
        out.setdefault("dom_nodes", []).append(metrics["Nodes"])
        t0 = time.perf_counter()
        page.goto(f"{base}/run/{run}/individual/{ind}")
        page.wait_for_selector("ul.tree li")
        out.setdefault("individual_ms", []).append((time.perf_counter() - t0) * 1000)
        page.close()
    rss, hwm = peak_rss_mib(server_pid)
    result = {k: statistics.median(v) for k, v in out.items()}
    result.update(server_rss_mib=rss, server_peak_rss_mib=hwm)
    return result


def lineages(run_dir: Path, generations: list[int], timeout: float) -> list[dict[str, Any]]:
    from evolve.store import Store
    from evolve.ui import views

    limit = views.LINEAGE_LIMIT
    rows = []
    for g in generations:
        with Store.open(run_dir, read_only=True) as store:
            ind = store.query("SELECT min(individual_id) FROM individuals WHERE generation = ?", [g])[0][0]
        views.LINEAGE_LIMIT = limit
        t0 = time.perf_counter()
        page = views.lineage(run_dir, ind)  # what an individual's page asks for
        page_s = time.perf_counter() - t0
        views.LINEAGE_LIMIT = 10 ** 9  # the whole ancestry, as the macro gives it
        t0 = time.perf_counter()
        ours = views.lineage(run_dir, ind, depth=10 ** 6)
        ours_s = time.perf_counter() - t0
        naive_s: float | None = None
        naive_n: int | None = None
        t0 = time.perf_counter()  # the store's opening counted on both sides
        with Store.open(run_dir, read_only=True) as store:
            timer = threading.Timer(timeout, store.con.interrupt)
            timer.start()
            try:
                naive_n = int(store.query("SELECT count(*) FROM lineage(?)", [ind])[0][0])
                naive_s = time.perf_counter() - t0
            except Exception:  # interrupted: slower than the timeout
                naive_s = None
            finally:
                timer.cancel()
        rows.append({"generation": g, "individual": ind, "ancestry": len(ours["nodes"]), "ours_s": ours_s,
                     "page_nodes": len(page["nodes"]), "page_s": page_s,
                     "naive_s": naive_s, "naive_nodes": naive_n})
    return rows


def browser_parts(quickstart: Path, big: Path, last: int, ind: str, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    proc, base = serve([quickstart, big])
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            fp = first_paint(browser, base, quickstart.name, repeats)
            print(f"first paint, {quickstart.name}: front scatter drawn {fp['scatter_ms']:.0f} ms after "
                  f"navigation (median of {repeats}; min {fp['scatter_min_ms']:.0f}), "
                  f"DOM ready {fp['dom_ready_ms']:.0f} ms")
            hv = heavy(browser, base, big.name, ind, proc.pid, repeats)
            print(f"big run {big.name} (generation {last}): run page scatter {hv['page_scatter_ms']:.0f} ms; "
                  f"every evaluation ({hv['markers']:.0f} markers) drawn in {hv['all_points_ms']:.0f} ms; "
                  f"JS heap {hv['js_heap_mib']:.1f} MiB, {hv['dom_nodes']:.0f} DOM nodes; individual {ind} page "
                  f"with lineage {hv['individual_ms']:.0f} ms; server RSS {hv['server_rss_mib']:.0f} MiB "
                  f"(peak {hv['server_peak_rss_mib']:.0f} MiB)")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quickstart", type=Path, help="a run of configs/quickstart.yaml (parts 1 and 2)")
    ap.add_argument("--big", type=Path, help="a run of configs/zdt1.yaml (default: run it now)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lineage-timeout", type=float, default=60.0, help="seconds before the macro is stopped")
    ap.add_argument("--lineage-only", action="store_true", help="only part 3 (on --big)")
    args = ap.parse_args()
    if args.quickstart is None and not args.lineage_only:
        ap.error("--quickstart RUN_DIR is needed (or --lineage-only)")
    print(f"machine: {machine()}")
    big = args.big
    if big is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "evolve.cli", "run", "configs/zdt1.yaml", "--out", str(tmp),
                        "--run-id", "zdt1", "--quiet"], cwd=ROOT, check=True, capture_output=True)
        print(f"configs/zdt1.yaml run in {time.perf_counter() - t0:.1f} s")
        big = tmp / "zdt1"
    from evolve.store import Store

    with Store.open(big, read_only=True) as store:
        last = store.last_generation(store.run()["run_id"])
        assert last is not None
        ind = store.query("SELECT min(individual_id) FROM individuals WHERE generation = ?", [last])[0][0]
    if not args.lineage_only:
        browser_parts(args.quickstart, big, last, ind, args.repeats)
    gens = [g for g in (10, 20, 40, 80, last) if g <= last]
    print("lineage: generation | page's request: nodes, s | whole ancestry: ancestors, walk s, store macro s")
    for r in lineages(big, gens, args.lineage_timeout):
        naive = f"{r['naive_s']:.3f}" if r["naive_s"] is not None else f"> {args.lineage_timeout:.0f} (stopped)"
        same = "" if r["naive_nodes"] in (None, r["ancestry"]) else f" (macro: {r['naive_nodes']} rows)"
        print(f"  {r['generation']} | {r['page_nodes']}, {r['page_s']:.3f} | {r['ancestry']}, {r['ours_s']:.3f}, "
              f"{naive}{same}")


if __name__ == "__main__":
    main()
