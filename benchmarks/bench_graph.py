"""What checking a graph genome costs, and what graph variation makes.

- check: the graph's type check (built by the op library's one builder) and making the whole
  genome (every check), against rendering `h1.py` (what any evaluation pays anyway) and the
  naive way to find a broken graph: render `h1.py` and start it in a fresh Python to build
  its ops (what an evaluation would pay before it could fail);
- variation: over many children of the typed graph operators from the default graph (each
  child then varied again), how many build, how many are refused, how large graphs grow.

Run: .venv/bin/python benchmarks/bench_graph.py [--children 2000]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness_tower.errors import GenomeError  # noqa: E402
from harness_tower.genome import DEFAULT_GRAPH, TowerGenome  # noqa: E402
from harness_tower.render import render  # noqa: E402
from populations.operators import graph  # noqa: E402

BUILD_ONLY = """
import sys
source = open({path!r}).read().replace("sys.exit(main())", "pass")
module = {{"__name__": "h1"}}
exec(compile(source, "h1.py", "exec"), module)
from harness_tower import ft
ft.build_graph(module["GRAPH"], {{"decision": module["DECISION"], "command": module["COMMAND"]}}, "h1_writer",
               topk=1, max_iterations=1, chunk=16, settle=1.0)
"""


def per_call(fn: object, n: int) -> float:
    """Median microseconds per call over 5 rounds of n."""
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()  # type: ignore[operator]
        rounds.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(rounds)


def part_check() -> None:
    grown = list(DEFAULT_GRAPH)
    r = random.Random(0)
    while len(grown) < 30:
        grown = graph.insert_node(grown, r)
    data = TowerGenome().to_dict()
    big = {**data, "graph": grown}
    print("## checking a graph genome\n")
    print("| what | default graph (17 nodes) | grown graph (30 nodes) |")
    print("|---|---|---|")
    g_small, g_big = TowerGenome.from_dict(data), TowerGenome.from_dict(big)
    print(f"| type check: build the graph's ops | {per_call(g_small.build_h1_graph, 300):.0f} µs | "
          f"{per_call(g_big.build_h1_graph, 300):.0f} µs |")
    print(f"| make the genome (every check, the graph's included) | "
          f"{per_call(lambda: TowerGenome.from_dict(data), 300):.0f} µs | "
          f"{per_call(lambda: TowerGenome.from_dict(big), 300):.0f} µs |")
    print(f"| render h1.py | {per_call(lambda: render(g_small, 1), 200):.0f} µs | "
          f"{per_call(lambda: render(g_big, 1), 200):.0f} µs |")
    naive = []
    with tempfile.TemporaryDirectory() as tmp:
        for g in (g_small, g_big):
            path = Path(tmp) / "h1.py"
            path.write_text(render(g, 1))
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", BUILD_ONLY.format(path=str(path))], check=True, cwd=ROOT)
                times.append((time.perf_counter() - t0) * 1e6)
            naive.append(statistics.median(times))
    print(f"| naive: render, start h1.py in a fresh Python and build its ops | {naive[0]:.0f} µs | {naive[1]:.0f} µs |")
    print()


def part_variation(children: int) -> None:
    r = random.Random(1)
    ops = {"graph_param": graph.change_param, "graph_rewire": graph.rewire, "graph_insert": graph.insert_node,
           "graph_delete": graph.delete_node}
    made = {k: 0 for k in ops}
    same = {k: 0 for k in ops}
    refused = {k: 0 for k in ops}
    sizes = []
    genome = TowerGenome()
    for _ in range(children):
        name = r.choice(list(ops))
        nodes = ops[name](genome.nodes, r)
        if nodes == list(genome.nodes):
            same[name] += 1
            continue
        try:
            genome = genome.replace(graph=tuple(nodes))
            made[name] += 1
        except GenomeError:
            refused[name] += 1
        sizes.append(len(genome.nodes))
    a, b = TowerGenome(graph=tuple(graph.insert_node(DEFAULT_GRAPH, r))), genome
    cx_made = cx_refused = 0
    for _ in range(children // 4):
        for nodes in graph.exchange(a.nodes, b.nodes, r):
            try:
                TowerGenome(graph=tuple(nodes))
                cx_made += 1
            except GenomeError:
                cx_refused += 1
    print(f"## graph variation ({children} children in a chain from the default graph)\n")
    print("| operator | children that build | refused by the type check | nothing to change |")
    print("|---|---|---|---|")
    for k in ops:
        print(f"| {k} | {made[k]} | {refused[k]} | {same[k]} |")
    print(f"| exchange (subgraph crossover) | {cx_made} | {cx_refused} | - |")
    print(f"\ngraph size along the chain: median {statistics.median(sizes):.0f} nodes, max {max(sizes)}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--children", type=int, default=2000)
    args = ap.parse_args()
    print(f"machine: {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()}\n")
    part_check()
    part_variation(args.children)


if __name__ == "__main__":
    main()
