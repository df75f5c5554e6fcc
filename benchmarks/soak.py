"""Soak: N tower evaluations mixing good and adversarial genomes across evaluator actors.

Reports evaluations per hour, failures by reason, and what was left behind: tmux servers,
sandboxed processes, temporary directories and the driver's open file descriptors, counted
before and after (each leak count must be 0).

Run: .venv/bin/python benchmarks/soak.py [--n 500] [--actors 2] [--depth 2]
"""
from __future__ import annotations

import argparse
import collections
import glob
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness_tower.genome import TowerGenome  # noqa: E402
from harness_tower.sandbox import resolve_isolation  # noqa: E402

ADVERSARIES = {
    "fork bomb": ":(){ :|:& };:",
    "flood": "yes | head -c 3000000",
    "write outside": "echo pwned > /etc/harness-evolve-soak",
    "git rewrite": "git reset --hard HEAD~2",
    "direct tmux": "tmux kill-server",
    "busy loop": "while :; do :; done",
    "kill parent": "kill -9 $PPID",
}


def genomes(n: int) -> list[tuple[str, TowerGenome]]:
    good = [("good: " + name, TowerGenome(content_source=cs, typing_mode=tm))
            for name, cs, tm in (("kernel/line", "kernel", "line"), ("literal/statement", "literal", "statement"))]
    bad = [(f"adversary: {name}", TowerGenome(task_command=cmd, task_expected="never printed", max_iterations=3,
                                               settle_timeout=2.0, child_timeout=20.0))
           for name, cmd in ADVERSARIES.items()]
    mix = good * 3 + bad  # ~46% good
    return [mix[i % len(mix)] for i in range(n)]


def leaks(root: Path) -> dict[str, int]:
    """What the soak's sandboxes left: every sandbox lives under `root` (TOWER_TMPDIR), and
    every process one started (tmux server, shells, harnesses) names its socket there."""
    marker = f"TOWER_RECORDER={root}/".encode()
    tmux = sandboxed = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if marker not in fh.read():
                    continue
            with open(f"/proc/{pid}/stat", "rb") as st:
                fields = st.read().decode(errors="replace")
        except OSError:
            continue
        if fields.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        sandboxed += 1
        tmux += "(tmux" in fields
    return {"tmux servers": tmux, "sandboxed processes": sandboxed,
            "sandbox temp dirs": len(glob.glob(str(root / "hes-*"))),
            "actor roots": len(glob.glob(str(root / "evolve-actor-*"))),
            "driver open fds": len(os.listdir("/proc/self/fd"))}


DIAGNOSES = ("resource limit: processes", "resource limit: memory", "resource limit: file size",
             "resource limit: cpu time", "terminal flooded", "signalling outside the sandbox denied",
             "sandbox denied network access", "sandbox denied access outside the work tree",
             "the trajectory's git directory is out of reach", "direct tmux access denied",
             "the tower did not finish", "constraints violated")


def reason(status: str, error: str | None) -> str:
    """The diagnosis an evaluation was stored with, or the innermost harness message."""
    if status == "ok":
        return "ok"
    text = error or ""
    for known in DIAGNOSES:
        if text.startswith(known) or f" {known}" in text[:80]:
            return f"{status}: {known}"
    inner = re.split(r"(?:error: |TowerError: )", text)[-1]
    return f"{status}: {re.sub(r'[0-9]+', 'N', inner)[:70]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=40.0)
    ap.add_argument("--verbose", action="store_true", help="print every outcome's reason")
    args = ap.parse_args()

    import ray

    from evolve.actors import EvaluatorPool
    from populations.base import EvalItem
    from populations.tower import TowerSpecies

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    root = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    root.chmod(0o755)
    ray.init(address="local", num_cpus=args.actors, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {"TOWER_TMPDIR": str(root)}})
    species = TowerSpecies(depth=args.depth)
    pool = EvaluatorPool(species, run_id="soak", n_actors=args.actors, timeout=args.timeout, retries=1, grace=30,
                         sandbox_parent=str(root))
    pool.wait_ready()
    before = leaks(root)
    items, kinds = [], {}
    for i, (kind, genome) in enumerate(genomes(args.n)):
        ind = f"s{i:05d}"
        kinds[ind] = kind
        items.append(EvalItem(ind, genome, genome.hash(), i))
    by_reason: collections.Counter[str] = collections.Counter()
    by_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    bundle_bytes = 0
    t0 = time.perf_counter()
    done = 0
    for out in pool.evaluate(items):
        done += 1
        r = reason(out.status, out.error)
        by_reason[r] += 1
        by_kind[kinds[out.individual_id]][r] += 1
        bundle_bytes += len(out.bundle or b"")
        if kinds[out.individual_id].startswith("good") and out.status != "ok" or args.verbose:
            print(f"  {out.individual_id} {kinds[out.individual_id]}: {out.status}: {out.error}", file=sys.stderr)
        if done % 50 == 0:
            print(f"  {done}/{args.n} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    wall = time.perf_counter() - t0
    pool.close()
    ray.shutdown()
    time.sleep(1.0)
    after = leaks(root)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; isolation "
          f"{resolve_isolation('auto')}; {args.n} evaluations, depth {args.depth}, {args.actors} actors")
    print(f"wall {wall:.1f}s -> {args.n / wall * 3600:.0f} evaluations/hour; "
          f"{bundle_bytes / max(1, args.n) / 1024:.1f} KiB of trajectory bundle per evaluation")
    print("outcomes by genome kind:")
    for kind in sorted(by_kind):
        print(f"  {kind:28s} " + ", ".join(f"{r} x{c}" for r, c in by_kind[kind].most_common()))
    print("failures by reason:")
    for r, c in by_reason.most_common():
        print(f"  {c:5d}  {r}")
    print("left behind (before -> after):")
    for k in before:
        leak = after[k] - before[k]
        print(f"  {k:22s} {before[k]:4d} -> {after[k]:4d}   leak {leak}")
    print("host untouched:", not Path("/etc/harness-evolve-soak").exists())


if __name__ == "__main__":
    main()
