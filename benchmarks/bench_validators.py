"""Scoring a 2,000-commit trajectory: `validators.score()` vs checkout-per-commit, in one run.

The trajectory is what a depth-3 tower leaves behind: `h3_writer` types `h2.py` in line
mode (`cat > h2.py`, the file grows on each Enter), `h2_writer` types `h1.py` in an
editor-like mode (the file changes on every key), `h1_writer` runs the task; every key is
at most 16 characters and every commit carries its 80x24 pane capture. The sources are
harness-like: inline experience heredocs, small top-level functions, a main.

- ours: `validators.score(repo)` (one `git log`, blobs from the object store, cached
  verdicts, incremental trees) - every metric, all sessions.
- naive: a clone's work tree; for each commit `git checkout`, glob the code files, read
  them, `ast.parse` every `.py` when some `.py` changed, indel against the session's
  previous snapshot, compare the session's capture file with its previous one, and for
  each changed `.py` the inserted characters (whole-file editops) against the keys typed
  since its last change; trailers from one `git log`. avg_interval, max_diff_len,
  syntax_ratio, idle_keys, untyped_chars and code_bytes - a subset of what ours computes
  (no tamper, self_read, task_correct, keys_audit, edit_distance) - and the two must agree
  exactly.

Run: .venv/bin/python benchmarks/bench_validators.py [--commits 2000] [--naive-limit N]
"""
from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rapidfuzz.distance import Indel, LCSseq  # noqa: E402

import validators  # noqa: E402

TEXT_MAX = 16
COLS, ROWS = 80, 24


# -- a realistic trajectory ----------------------------------------------------------------

def harness_source(level: int, rng: random.Random, blocks: int) -> str:
    """A plausible `h{level}.py`: docstring, imports, experience heredocs, functions, main."""
    words = ("send", "capture", "pane", "line", "child", "expert", "query", "value", "retry",
             "prompt", "settle", "fixation", "graph", "switch", "level", "writer")
    out = [f'"""H{level}: writes H{level - 1} by typing it into tmux session '
           f'h{level - 1}_writer."""',
           "from __future__ import annotations", "", "import json", "import sys", "",
           "from harness_tower.ft import (ft_expert, ft_recurrent, ft_sequential,",
           "                              ft_tmux_capture_pane, ft_tmux_send_text)", "", ""]
    for b in range(blocks):
        if b % 3 == 0:
            out.append(f'EXPERIENCE_{b} = """\\')
            for _ in range(rng.randint(3, 6)):
                q = " ".join(rng.choice(words) for _ in range(rng.randint(3, 6)))
                out.append(f"query: {q} | key: {rng.choice(words)} | value: {q.upper()[:30]}")
            out += ['"""', "", ""]
        else:
            name = f"{rng.choice(words)}_{rng.choice(words)}_{b}"
            out.append(f"def {name}(state: dict, pane: str) -> dict:")
            out.append(f'    """{rng.choice(words).title()} the {rng.choice(words)} step."""')
            for _ in range(rng.randint(2, 6)):
                kind = rng.random()
                a, c = rng.choice(words), rng.choice(words)
                if kind < 0.3:
                    out.append(f"    if state.get({a!r}) is None:")
                    out.append(f"        state[{a!r}] = ft_expert({c!r}, pane)[:{rng.randint(8, 64)}]")
                elif kind < 0.6:
                    out.append(f"    for i, {a} in enumerate(state.get({c!r}, [])):")
                    out.append(f"        state.setdefault('seen', []).append((i, {a}))")
                else:
                    out.append(f"    state[{a!r}] = json.dumps({{{c!r}: len(pane)}})")
            out += ["    return state", "", ""]
    out += ["def main() -> int:",
            "    graph = ft_recurrent(ft_sequential(ft_tmux_send_text, ft_tmux_capture_pane))",
            f"    return graph.run(level={level}, session='h{level - 1}_writer')", "", "",
            'if __name__ == "__main__":', "    sys.exit(main())", ""]
    return "\n".join(out)


def chunks(line: str) -> list[str]:
    return [line[i:i + TEXT_MAX] for i in range(0, len(line), TEXT_MAX)]


class Writer:
    """Builds the commit stream for `git fast-import`, like the recorder would."""

    def __init__(self) -> None:
        self.stream = bytearray()
        self.mark = 0
        self.seq: dict[str, int] = {}
        self.clock = 1795309284.0
        self.screen: dict[str, list[str]] = {}
        self.rng = random.Random(7)

    def commit(self, message: str, files: dict[str, str]) -> None:
        self.mark += 1
        msg = message.encode()
        self.stream += (f"commit refs/heads/main\nmark :{self.mark}\ncommitter tower "
                        f"<tower@localhost> {int(self.clock)} +0000\n").encode()
        self.stream += b"data %d\n%s\n" % (len(msg), msg)
        if self.mark > 1:
            self.stream += f"from :{self.mark - 1}\n".encode()
        for path, text in files.items():
            blob = text.encode()
            self.stream += f"M 100644 inline {path}\n".encode() + b"data %d\n%s\n" % (len(blob), blob)
        self.stream += b"\n"

    def key(self, session: str, keys: str, kind: str, files: dict[str, str],
            output: tuple[str, ...] = ()) -> None:
        seq = self.seq[session] = self.seq.get(session, 0) + 1
        self.clock += 0.015 + self.rng.random() * 0.02
        lines = self.screen.setdefault(session, ["$ "])
        if kind == "text":
            lines[-1] = (lines[-1] + keys)[-COLS:]
        elif keys == "Enter":
            lines.extend([*output, "$ "])
        del lines[:-ROWS]
        capture = "\n".join(lines) + "\n"
        preview = json.dumps(keys)[1:-1] if kind == "text" else f"<{keys}>"
        message = (f"{session}: {preview}\n\nKeys: {json.dumps(keys)}\nKind: {kind}\n"
                   f"Seq: {seq}\nTime: {self.clock:.6f}\n")
        self.commit(message, {**files, f".captures/{session}/{seq:06d}.txt": capture})

    def type_command(self, session: str, command: str, output: tuple[str, ...] = ()) -> None:
        for part in chunks(command):
            self.key(session, part, "text", {})
        self.key(session, "Enter", "ctrl", {}, output)


def build_trajectory(path: Path, commits: int) -> dict[str, int]:
    """Write a depth-3 trajectory of exactly `commits` commits; returns commits per session."""
    rng = random.Random(2026)
    w = Writer()
    budget = (commits - 12) // 2                       # two writers share the key budget
    h3 = harness_source(3, rng, 14)
    manifest = {"run_id": "bench", "individual_id": "i0", "genome_hash": "0" * 16, "depth": 3,
                "task": {"command": "echo hello world", "expected": "hello world"},
                "prompt": "$ ", "platform_version": "0.1.0"}
    w.commit("init", {".tower/manifest.json": json.dumps(manifest), "h3.py": h3})

    def fit(level: int, keys_per_line: int) -> list[str]:
        # The largest source whose typing fits the budget; pad with blank lines to hit it.
        blocks = 1
        while True:
            src = harness_source(level, random.Random(level), blocks + 1).split("\n")
            if sum(len(chunks(s)) + keys_per_line for s in src) > budget:
                break
            blocks += 1
        src = harness_source(level, random.Random(level), blocks).split("\n")
        while sum(len(chunks(s)) + keys_per_line for s in src) < budget:
            src.insert(-3, "")
        return src

    # h3_writer: line mode - `cat` writes each line when Enter is pressed.
    w.type_command("h3_writer", "cat > h2.py")
    text = ""
    for line in fit(2, 1)[:-1]:
        for part in chunks(line):
            w.key("h3_writer", part, "text", {})
        text += line + "\n"
        w.key("h3_writer", "Enter", "ctrl", {"h2.py": text})
    w.key("h3_writer", "C-d", "ctrl", {})
    w.type_command("h3_writer", "python3 h2.py")
    # h2_writer: editor mode - every key lands in the file at once.
    text = ""
    for line in fit(1, 1)[:-1]:
        for part in chunks(line):
            text += part
            w.key("h2_writer", part, "text", {"h1.py": text})
        text += "\n"
        w.key("h2_writer", "Enter", "ctrl", {"h1.py": text})
    w.type_command("h2_writer", "python3 h1.py")
    # h1_writer: the task itself; pad with harmless Enters to land on exactly `commits`.
    while w.mark < commits - 3:
        w.key("h2_writer", "Enter", "ctrl", {})
    w.type_command("h1_writer", "echo hello world", ("hello world",))
    w.commit("done", {".tower/result.json": json.dumps({"status": "ok"})})
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "fast-import", "--quiet"], input=bytes(w.stream), cwd=path, check=True)
    return dict(w.seq)


# -- the naive way ---------------------------------------------------------------------------

def _trailer(body: str, name: str) -> str | None:
    return next((ln.split(": ", 1)[1] for ln in body.splitlines() if ln.startswith(f"{name}: ")),
                None)


def naive_score(repo: Path, work: Path, limit: int | None) -> tuple[dict[str, float], int]:
    """Checkout every commit into a work tree and score from the files there."""
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(repo), str(work)], check=True)
    log = subprocess.run(["git", "log", "--reverse", "--format=%H%x00%s%x00%b%x01"],
                         cwd=work, check=True, capture_output=True, text=True).stdout
    entries = []
    for record in log.split("\x01")[:-1]:
        sha, subject, body = record.strip("\n").split("\x00")
        session = subject.split(":", 1)[0] if ":" in subject else None
        keys = _trailer(body, "Keys")
        entries.append((sha, session if subject not in ("init", "done") else None,
                        _trailer(body, "Time"), json.loads(keys) if keys else None,
                        _trailer(body, "Kind"), _trailer(body, "Seq")))
    if limit is not None:
        entries = entries[:limit]
    previous: dict[str, dict[str, bytes]] = {}
    worst: dict[str, int] = {}
    valid: dict[str, list[bool]] = {}
    times: dict[str, list[Decimal]] = {}
    idle: dict[str, int] = {}
    screens: dict[str, bytes] = {}
    last_py: dict[str, bytes] = {}           # every .py of the previous commit
    changed_at: dict[str, int] = {}          # .py path -> index of its last change
    typed: list[str] = []                    # per commit: the text its key typed
    untyped = 0
    for index, (sha, session, stamp, keys, kind, seq) in enumerate(entries):
        subprocess.run(["git", "checkout", "-q", "-f", sha], cwd=work, check=True)
        files = {}
        for name in glob.glob("**/*", root_dir=work, recursive=True, include_hidden=True):
            if name.startswith((".git/", ".captures/", ".tower/")) or name == ".git":
                continue
            if os.path.isfile(work / name):
                files[name] = (work / name).read_bytes()
        py = {name: data for name, data in files.items() if name.endswith(".py")}
        typed.append({"Enter": "\n", "Tab": "\t"}.get(keys or "", "") if kind == "ctrl"
                     else (keys or "") if kind == "text" and session else "")
        # untyped_chars: every .py whose content changed, against all text typed since its
        # previous change (that change's key included); the top level in init is exempt.
        for name in sorted(set(py) | set(last_py)):
            old, new = last_py.get(name), py.get(name)
            if old == new:
                continue
            since = changed_at.get(name, 0)
            changed_at[name] = index
            if new is None or (index == 0 and name == "h3.py"):
                continue
            a, b = (old or b"").decode("utf-8", "surrogateescape"), new.decode(
                "utf-8", "surrogateescape")
            inserted = "".join(b[op.dest_pos] for op in Indel.editops(a, b) if op.tag == "insert")
            untyped += len(inserted) - LCSseq.similarity(inserted, "".join(typed[since:index + 1]))
        code_changed = py != last_py
        last_py = py
        if session is None:
            continue
        if code_changed:
            ok = True
            for data in py.values():
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ast.parse(data)
                except (SyntaxError, ValueError):
                    ok = False
            valid.setdefault(session, []).append(ok)
        capture = work / ".captures" / session / f"{int(seq or 0):06d}.txt"
        screen = capture.read_bytes() if capture.is_file() else b""
        idle[session] = idle.get(session, 0) + (screen == screens.get(session, b"")
                                                and not code_changed)
        screens[session] = screen
        if stamp is not None:
            times.setdefault(session, []).append(Decimal(stamp))
        if session in previous:
            before = previous[session]
            size = 0
            for name in set(before) | set(files):
                a, b = before.get(name, b""), files.get(name, b"")
                if a != b:
                    size += Indel.distance(a.decode("utf-8", "surrogateescape"),
                                           b.decode("utf-8", "surrogateescape"))
            worst[session] = max(worst.get(session, 0), size)
        previous[session] = files
    out: dict[str, float] = {}
    for session in previous:
        label = session.removesuffix("_writer")
        t = times.get(session, [])
        verdicts = valid.get(session, [])
        out[f"avg_interval@{label}"] = (float((t[-1] - t[0]) / (len(t) - 1)) if len(t) > 1
                                        else float("inf"))
        out[f"max_diff_len@{label}"] = worst.get(session, 0)
        out[f"syntax_ratio@{label}"] = sum(verdicts) / len(verdicts) if verdicts else 1.0
        out[f"idle_keys@{label}"] = idle.get(session, 0)
    out["untyped_chars"] = untyped
    for n in (1, 2, 3):
        path = work / f"h{n}.py"
        if path.exists():
            out[f"code_bytes@h{n}"] = path.stat().st_size
    return out, len(entries)


# -- the run -----------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--naive-limit", type=int, default=None,
                        help="check out only the first N commits and extrapolate (quick runs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-validators-") as tmp:
        repo = Path(tmp) / "traj"
        t0 = time.perf_counter()
        per_session = build_trajectory(repo, args.commits)
        built = time.perf_counter() - t0
        count = int(subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=repo, check=True,
                                   capture_output=True, text=True).stdout)

        runs = []
        for _ in range(3):  # each call opens the repository afresh: no state is shared
            t0 = time.perf_counter()
            result = validators.score(repo)
            runs.append(time.perf_counter() - t0)
        ours = statistics.median(runs)

        t0 = time.perf_counter()
        naive, scored = naive_score(repo, Path(tmp) / "naive", args.naive_limit)
        naive_s = time.perf_counter() - t0
        if scored < count:
            naive_s *= count / scored  # extrapolated from the first `scored` commits

    metrics = result["metrics"]
    agree = all(metrics.get(k) == v for k, v in naive.items()) if args.naive_limit is None else None
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"trajectory: {count} commits ({', '.join(f'{s} {n}' for s, n in per_session.items())}), "
          f"built in {built:.2f} s; final sizes h1 {metrics['code_bytes@h1']} B, "
          f"h2 {metrics['code_bytes@h2']} B, h3 {metrics['code_bytes@h3']} B")
    print(f"syntax_ratio h3/h2: {metrics['syntax_ratio@h3']:.4f} / {metrics['syntax_ratio@h2']:.4f}, "
          f"max_diff_len h3/h2: {metrics['max_diff_len@h3']} / {metrics['max_diff_len@h2']}")
    print(f"new metrics: untyped_chars {metrics['untyped_chars']}, tamper {metrics['tamper']}, "
          f"self_read {metrics['self_read']}, idle_keys h3/h2/h1: {metrics['idle_keys@h3']} / "
          f"{metrics['idle_keys@h2']} / {metrics['idle_keys@h1']}, task_correct "
          f"{metrics['task_correct']}")
    print(f"ours  validators.score(): {ours:8.3f} s  (all metrics; median of "
          f"{', '.join(f'{r:.3f}' for r in runs)})")
    print(f"naive checkout per commit: {naive_s:8.3f} s"
          + (f"  (extrapolated from {scored} commits)" if args.naive_limit else ""))
    print(f"ratio: {naive_s / ours:.1f}x faster; targets >= 50x and < 2 s: "
          f"{'met' if naive_s / ours >= 50 and ours < 2 else 'NOT met'}")
    if agree is not None:
        print(f"naive and ours agree on {len(naive)} shared values: {agree}")
        if not agree:
            for k, v in naive.items():
                if metrics.get(k) != v:
                    print(f"  {k}: ours {metrics.get(k)!r} naive {v!r}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
