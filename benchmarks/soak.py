"""Soak: N tower evaluations mixing honest genomes and every catalogued cheat, W at a time.

Honest cases are the seed genomes (populations/seeds/*.json) at depth 2; cheats are every
entry of `tests/harness_tower/cheats.py`'s CATALOGUE (the harness programs test_cheats runs)
plus the hostile genomes of the old soak (test_adversarial's expectations). Roughly half
the evaluations are honest. Workers are threads of this driver calling `evaluate` /
`run_tower` (every harness, pane and tmux server runs in subprocesses; the recorder and
gateway of each evaluation run in the driver), or with `--pool processes` forked worker
processes running one evaluation at a time, as evaluator actors do.

Reports evaluations per hour; per case its outcomes (status and a normalised reason); how
many cheat evaluations ended exactly as their catalogue entry says ("caught") and how many
honest ones were ok with clean integrity metrics; and what was left behind, before -> after:
processes running as a sandbox user id, tmux servers and sandbox directories under the
soak's TOWER_TMPDIR, claimed user ids, files of sandbox users in the shared temporary
directories, the driver's open descriptors and threads. Each evaluation is also checked
right after it returns: no process and no shared-temp file of its own user id is left.

Run: .venv/bin/python benchmarks/soak.py [--n 500] [--workers 2] [--pool threads|processes]
                                          [--isolation auto|process|bwrap|both]
"""
from __future__ import annotations

import argparse
import collections
import gc
import json
import multiprocessing
import os
import platform
import re
import resource
import shutil
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import (
    Executor,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness_tower import sandbox
from harness_tower.evaluate import EvalResult, evaluate
from harness_tower.genome import TowerGenome, load_genome
from harness_tower.sandbox import SANDBOX_UIDS, UID_DIR, Limits, resolve_isolation
from tests.harness_tower.cheats import CATALOGUE, basic_problems, evaluate_cheat, reason
from tests.harness_tower.conftest import git, one_task, typing_genome

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "populations" / "seeds").glob("*.json"))
SHARED_TEMP = ("/tmp", "/var/tmp", "/dev/shm")
HOSTILE_LIMITS = Limits(cpu_seconds=30, memory_bytes=1 << 30, file_bytes=1 << 20, processes=64)
OUTSIDE = Path("/etc/harness-evolve-soak")


@dataclass(frozen=True)
class Case:
    """One evaluation to run: what kind it is, and how to run and judge it."""

    kind: str  # honest | cheat | hostile
    name: str
    isolation: str
    run: Callable[[Path, str], tuple[EvalResult, list[str]]]  # (out dir, isolation) -> result, what it missed


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------
def honest(genome: TowerGenome, depth: int, timeout: float) -> Callable[[Path, str], tuple[EvalResult, list[str]]]:
    def run(out: Path, isolation: str) -> tuple[EvalResult, list[str]]:
        result = evaluate(genome, depth=depth, out_dir=out, isolation=isolation, timeout=timeout, tasks=one_task())
        problems = basic_problems(result, isolation)
        if result.status != "ok":
            problems.append(f"status {result.status}")
        want = {"untyped_chars": 0, "tamper": 0, "self_read": 0, "keys_audit": 0, "task_pass_rate": 1.0,
                "audit_refusals": 0, "binding_refusals": 0}
        problems += [f"{k}={result.metrics.get(k)}" for k, v in want.items() if result.metrics.get(k) != v]
        return result, problems
    return run


def hostile(command: str, statuses: tuple[str, ...], says: str,
            check: Callable[[EvalResult], str | None] | None = None,
            ) -> Callable[[Path, str], tuple[EvalResult, list[str]]]:
    """An old-soak adversary: h1 types `command` as its task. As in test_adversarial, the tower
    survives it (`statuses`) and the task fails with the reason its terminal showed (`says`)."""
    def run(out: Path, isolation: str) -> tuple[EvalResult, list[str]]:
        genome = typing_genome(command, max_iterations=3, settle_timeout=2)
        result = evaluate(genome, depth=1, out_dir=out, timeout=30 if ":|:" in command else 40,
                          limits=HOSTILE_LIMITS, isolation=isolation, tasks=one_task("never printed"))
        problems = basic_problems(result, isolation)
        if result.status not in statuses:
            problems.append(f"status {result.status}, expected {' or '.join(statuses)}")
        task = result.tasks[0] if result.tasks else None
        if task is None or task.passed:
            problems.append("the task did not fail")
        if says not in reason(result) + (task.reason if task else ""):
            problems.append(f"reason lacks {says!r}")
        extra = check(result) if check else None
        return result, problems + ([extra] if extra else [])
    return run


def _history_intact(result: EvalResult) -> str | None:
    log = git(result.trajectory, "log", "--format=%s").splitlines()  # type: ignore[arg-type]
    return None if log[-1] == "init" and log[0] == "done" else f"history rewritten: {log[:1]}..{log[-1:]}"


HOSTILE = {
    "fork bomb": hostile(":(){ :|:& };:", ("ok", "timeout"), "resource limit: processes"),
    "flood": hostile("yes | head -c 3000000", ("ok",), "terminal flooded: h1_writer produced"),
    "write outside": hostile(f"echo pwned > {OUTSIDE}", ("ok",), "sandbox denied access outside the work tree",
                             lambda r: f"{OUTSIDE} written" if OUTSIDE.exists() else None),
    "git rewrite": hostile("git reset --hard HEAD~2", ("ok",), "git directory is out of reach", _history_intact),
    "direct tmux": hostile("tmux kill-server", ("ok",), "direct tmux access denied"),
}


def plan(n: int, levels: list[str], depth: int, timeout: float, with_hostile: bool) -> list[Case]:
    """n cases alternating honest and cheat (each list cycled), so roughly half are honest."""
    good = [Case("honest", p.stem, level, honest(load_genome(str(p)), depth, timeout))
            for level in levels for p in SEEDS]
    bad = [Case("cheat", c.name, level, lambda out, iso, c=c: evaluate_cheat(c, out, iso))  # type: ignore[misc]
           for level in levels for c in CATALOGUE
           if level in c.levels and (c.bait is None or os.geteuid() == 0)]
    if with_hostile:
        bad += [Case("hostile", name, level, run) for level in levels for name, run in HOSTILE.items()]
    cases: list[Case] = []
    for i in range(n):
        pool, k = (good, i // 2) if i % 2 == 0 else (bad, i // 2)
        cases.append(pool[k % len(pool)])
    return cases


# --------------------------------------------------------------------------------------
# What is left behind
# --------------------------------------------------------------------------------------
OUR_UIDS: set[int] = set()
_local = threading.local()
_claim_uid = sandbox.claim_uid


def _noting_claim_uid() -> int:
    """sandbox.claim_uid, noting which user id this thread's evaluation got."""
    uid = _claim_uid()
    OUR_UIDS.add(uid)
    _local.uids = [*getattr(_local, "uids", []), uid]
    return uid


def sandbox_user_processes() -> dict[int, list[int]]:
    """Live processes running as a sandbox user id (any of real, effective, saved, fs): uid -> pids."""
    found: dict[int, list[int]] = collections.defaultdict(list)
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        if fields.get("State", "").split()[:1] in (["Z"], ["X"]):
            continue
        uids = {int(u) for u in fields.get("Uid", "").split()}
        for uid in uids:
            if uid in SANDBOX_UIDS:
                found[uid].append(int(entry))
                break
    return found


def sandbox_user_files(uids: set[int] | None = None) -> list[str]:
    """Entries in the shared temporary directories owned by a sandbox user id (or one of `uids`);
    descends only into world-writable directories, where another user can create files."""
    found = []
    pending = [top for top in SHARED_TEMP if os.path.isdir(top)]
    while pending:
        top = pending.pop()
        try:
            names = os.listdir(top)
        except OSError:
            continue
        for name in names:
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (st.st_uid in uids) if uids is not None else (st.st_uid in SANDBOX_UIDS):
                found.append(path)
            elif stat.S_ISDIR(st.st_mode) and st.st_mode & 0o002:
                pending.append(path)
    return found


def tmux_servers(root: Path) -> list[int]:
    """tmux processes whose socket lives under `root`."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    continue
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith(b"tmux") and any(str(root).encode() in a for a in argv):
            found.append(int(entry))
    return found


def left_behind(root: Path) -> dict[str, int]:
    procs = sandbox_user_processes()
    claimed = {int(p.name) for p in UID_DIR.iterdir() if p.name.isdigit()} if UID_DIR.is_dir() else set()
    files = sandbox_user_files()
    ours = sandbox_user_files(OUR_UIDS) if OUR_UIDS else []
    return {
        "processes as a sandbox uid (any)": sum(map(len, procs.values())),
        "processes as a soak sandbox uid": sum(len(p) for u, p in procs.items() if u in OUR_UIDS),
        "tmux servers under TOWER_TMPDIR": len(tmux_servers(root)),
        "sandbox dirs hes-* under it": len(list(root.glob("hes-*"))),
        "claimed uids (any)": len(claimed),
        "claimed uids of the soak": len(claimed & OUR_UIDS),
        "sandbox-uid files in shared temp (any)": len(files),
        "soak-uid files in shared temp": len(ours),
        "driver open fds": len(os.listdir("/proc/self/fd")),
        "driver threads": threading.active_count(),
    }


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------
def normalise(status: str, error: str | None, root: Path) -> str:
    """status: the reason's first line, with numbers, hex tokens and temporary paths folded."""
    if status == "ok" and not error:
        return "ok"
    text = (error or "").splitlines()[0] if error else ""
    text = re.sub(re.escape(str(root)) + r"/hes-\w+", "<sandbox>", text)
    text = re.sub(r"/tmp/[\w.\-/]+", "<tmp>", text)
    text = re.sub(r"[0-9a-f]{8,}", "<hex>", text)
    text = re.sub(r"[0-9]+", "N", text)
    return f"{status}: {text[:100]}"


@dataclass
class Outcome:
    """How one case ended (plain data: it comes back from a worker process too)."""

    kind: str
    name: str
    isolation: str
    status: str
    label: str
    problems: list[str]
    seconds: float
    own_leftovers: list[str]
    uids: list[int]


CASES: list[Case] = []  # the plan, set before the workers start (forked workers inherit it)


def run_case(i: int, root: Path) -> Outcome:
    case = CASES[i]
    out = root / "out" / f"e{i:05d}"
    _local.uids = []
    start = time.monotonic()
    try:
        result, problems = case.run(out, case.isolation)
        status, label = result.status, normalise(result.status, result.error, root)
    except Exception as exc:  # noqa: BLE001 - a crash of the evaluator is an outcome to report, not to stop on
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                            for f in reversed(traceback.extract_tb(exc.__traceback__)[-4:]))
        status, label, problems = "crash", f"crash: {type(exc).__name__}: {exc}"[:160], [f"raised at {where}"]
    seconds = time.monotonic() - start
    own: list[str] = []
    for uid in _local.uids:  # right after it returned: nothing of its user may be left
        own += [f"uid {uid}: process {pid}" for pid in sandbox_user_processes().get(uid, [])]
        own += [f"uid {uid}: file {path}" for path in sandbox_user_files({uid})]
    shutil.rmtree(out, ignore_errors=True)
    return Outcome(case.kind, case.name, case.isolation, status, label, problems, seconds, own, list(_local.uids))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="evaluations (default 500)")
    ap.add_argument("--workers", type=int, default=2, help="evaluations at once (default 2)")
    ap.add_argument("--pool", default="threads", choices=["threads", "processes"],
                    help="workers as threads of this driver (default) or as forked processes, one "
                         "evaluation at a time each, as evaluator actors run them")
    ap.add_argument("--isolation", default="auto", choices=["auto", "process", "bwrap", "both"],
                    help="isolation of every case (auto: the machine's; both: process and bwrap)")
    ap.add_argument("--depth", type=int, default=2, help="depth of the honest towers (default 2)")
    ap.add_argument("--timeout", type=float, default=120.0, help="an honest evaluation's timeout")
    ap.add_argument("--no-hostile", action="store_true", help="leave out the old soak's hostile genomes")
    ap.add_argument("--verbose", action="store_true", help="print every outcome as it comes")
    args = ap.parse_args()

    levels = ["process", "bwrap"] if args.isolation == "both" else [resolve_isolation(args.isolation)]
    root = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    root.chmod(0o755)  # sandboxed harnesses run unprivileged and must reach their directories
    os.environ["TOWER_TMPDIR"] = str(root)
    sandbox.claim_uid = _noting_claim_uid  # type: ignore[assignment]
    cases = plan(args.n, levels, args.depth, args.timeout, not args.no_hostile)
    CASES[:] = cases
    OUTSIDE.unlink(missing_ok=True)

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start; "
          f"{'root' if os.geteuid() == 0 else 'not root'}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    n_honest = sum(c.kind == "honest" for c in cases)
    print(f"{len(cases)} evaluations, {args.workers} workers ({args.pool}), isolation {'+'.join(levels)}; "
          f"{n_honest} honest (depth {args.depth}, {len(SEEDS)} seeds), {len(cases) - n_honest} cheats "
          f"({len({(c.name, c.isolation) for c in cases if c.kind == 'cheat'})} catalogue cheat/level pairs of "
          f"{sum(len(set(c.levels) & set(levels)) for c in CATALOGUE)}, "
          f"{sum(c.kind == 'hostile' for c in cases)} hostile genomes); TOWER_TMPDIR={root}", flush=True)

    gc.collect()
    before = left_behind(root)
    outcomes: list[Outcome] = []
    t0 = time.perf_counter()
    pool: Executor = (ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="soak")
                      if args.pool == "threads" else
                      ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("fork")))
    with pool:
        futures = [pool.submit(run_case, i, root) for i in range(len(cases))]
        for future in as_completed(futures):
            o = future.result()
            outcomes.append(o)
            OUR_UIDS.update(o.uids)  # those a worker process claimed, for the counts below
            if args.verbose or o.problems or o.own_leftovers:
                print(f"  {o.kind} {o.name} [{o.isolation}] {o.seconds:.1f}s: {o.label}"
                      + (f"  MISSED {o.problems}" if o.problems else "")
                      + (f"  LEFT {o.own_leftovers}" if o.own_leftovers else ""), file=sys.stderr, flush=True)
            if len(outcomes) % 50 == 0:
                print(f"  {len(outcomes)}/{len(cases)} in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    time.sleep(1.0)
    fds_before_gc = len(os.listdir("/proc/self/fd"))
    gc.collect()  # pipes of finished subprocesses can wait in reference cycles for the collector
    after = left_behind(root)
    load_end = os.getloadavg()

    print(f"\nwall {wall:.1f}s -> {len(outcomes) / wall * 3600:.0f} evaluations/hour; load average "
          f"{' '.join(f'{x:.2f}' for x in load_end)} at the end; driver peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    per_kind: dict[str, list[Outcome]] = collections.defaultdict(list)
    for o in outcomes:
        per_kind[o.kind].append(o)
    for kind in ("honest", "cheat", "hostile"):
        group = per_kind.get(kind, [])
        if not group:
            continue
        secs = sorted(o.seconds for o in group)
        print(f"\n{kind}: {len(group)} evaluations, median {secs[len(secs) // 2]:.1f}s, max {secs[-1]:.1f}s")
        by_case: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for o in group:
            by_case[(o.name, o.isolation)][o.label] += 1
        for (name, level), labels in sorted(by_case.items()):
            print(f"  {name} [{level}]: " + "; ".join(f"{label} x{c}" for label, c in labels.most_common()))

    honest_runs = per_kind.get("honest", [])
    cheat_runs = per_kind.get("cheat", []) + per_kind.get("hostile", [])
    missed = [o for o in cheat_runs if o.problems]
    honest_bad = [o for o in honest_runs if o.problems]
    distinct = {(o.kind, o.name, o.isolation) for o in cheat_runs}
    distinct_missed = {(o.kind, o.name, o.isolation) for o in missed}
    print(f"\nevery cheat caught: {len(cheat_runs) - len(missed)}/{len(cheat_runs)} cheat evaluations ended as "
          f"expected ({len(distinct) - len(distinct_missed)}/{len(distinct)} distinct cheat/level pairs)")
    for o in missed:
        print(f"  NOT CAUGHT {o.kind} {o.name} [{o.isolation}]: {o.label}; missed {o.problems}")
    print(f"every honest genome ok: {len(honest_runs) - len(honest_bad)}/{len(honest_runs)} ok with "
          "untyped_chars, tamper, self_read, keys_audit, audit/binding refusals 0 and its task passed")
    for o in honest_bad:
        print(f"  NOT OK {o.name} [{o.isolation}]: {o.label}; {o.problems}")
    crashes = [o for o in outcomes if o.status == "crash"]
    print(f"evaluator crashes: {len(crashes)}")
    own = [o for o in outcomes if o.own_leftovers]
    print(f"evaluations leaving a process or shared-temp file of their own uid right after returning: {len(own)}")
    for o in own:
        print(f"  {o.kind} {o.name} [{o.isolation}]: {o.own_leftovers[:5]}")
    print("left behind (before -> after):")
    for k in before:
        print(f"  {k:40s} {before[k]:5d} -> {after[k]:5d}   leak {after[k] - before[k]}")
    print(f"  (driver open fds before a gc.collect(): {fds_before_gc})")
    print(f"host untouched: {not OUTSIDE.exists()}")
    print(json.dumps({"evaluations": len(outcomes), "wall_s": round(wall, 1),
                      "per_hour": round(len(outcomes) / wall * 3600), "honest_ok": len(honest_runs) - len(honest_bad),
                      "honest": len(honest_runs), "cheats_caught": len(cheat_runs) - len(missed),
                      "cheats": len(cheat_runs), "crashes": len(crashes), "own_leftovers": len(own),
                      "before": before, "after": after}))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
