"""Cost per recorded key: our recorder vs the seed framework's way vs the floor, in one run.

- seed way: libtmux `send_keys`, capture written to a file, `git add .` + `git commit` as
  subprocesses, every key (no settle at all).
- floor: one persistent tmux control-mode client doing send + capture, no git.
- ours: `Recorder.send` (send -> settle on the echo -> capture -> one fast-import commit),
  called in-process and through the socket client that harness programs use.
- one commit: our commit path alone (work-tree scan + fast-import write), per key.

Run: .venv/bin/python benchmarks/bench_recorder.py [--keys 300]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import libtmux  # noqa: E402

from harness_tower import ft  # noqa: E402
from harness_tower.sandbox import Sandbox  # noqa: E402

TEXT = "abcdefghijklmnop"  # 16 characters: one full send


def keys(n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        out.append(("Enter", "ctrl") if i % 8 == 7 else (TEXT, "text"))
    return out


def bench_ours(n: int, via_socket: bool) -> float:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        with Sandbox(Path(tmp) / "o") as box:
            rec = box.recorder
            assert rec is not None
            rec.init_commit({"depth": 1})
            rec.open("h1_writer")
            rec.send("h1_writer", "cat > out.txt", "text")
            rec.send("h1_writer", "Enter", "ctrl")
            term = ft.Terminal(box.connect("h1_writer")) if via_socket else None
            t0 = time.perf_counter()
            for k, kind in keys(n):
                if term:
                    term.send("h1_writer", k, kind)
                else:
                    rec.send("h1_writer", k, kind)
            dt = time.perf_counter() - t0
            box.finish({"status": "ok"})
    return dt / n


def bench_commit_only(n: int) -> float:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        with Sandbox(Path(tmp) / "c") as box:
            rec = box.recorder
            assert rec is not None
            rec.init_commit({"depth": 1})
            f = box.live / "out.txt"  # the work tree while the sandbox runs
            t0 = time.perf_counter()
            for i in range(n):
                with open(f, "a") as fh:
                    fh.write(TEXT)
                rec._commit(f"h1_writer: x\n\nKeys: \"x\"\nKind: text\nSeq: {i + 1}\nTime: 0\n",
                            [(f".captures/h1_writer/{i + 1:06d}.txt", TEXT.encode() * 30, 0o100644)])
            dt = time.perf_counter() - t0
            box.finish({"status": "ok"})
    return dt / n


def bench_floor(n: int) -> float:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        with Sandbox(Path(tmp) / "f") as box:
            rec = box.recorder
            assert rec is not None
            rec.open("h1_writer")
            sess = rec.sessions["h1_writer"]
            sess.client.command(f"send-keys -t {sess.pane} -l 'cat > out.txt'")
            sess.client.command(f"send-keys -t {sess.pane} Enter")
            t0 = time.perf_counter()
            for k, kind in keys(n):
                arg = f"-l {k}" if kind == "text" else k
                sess.client.commands([f"send-keys -t {sess.pane} {arg}", f"capture-pane -p -t {sess.pane}"])
            return (time.perf_counter() - t0) / n


def bench_seed(n: int) -> float:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        work = Path(tmp) / "w"
        work.mkdir()
        subprocess.run(["git", "init", "-q", str(work)], check=True)
        subprocess.run(["git", "-C", str(work), "config", "user.email", "b@b"], check=True)
        subprocess.run(["git", "-C", str(work), "config", "user.name", "b"], check=True)
        server = libtmux.Server(socket_path=str(Path(tmp) / "s"), config_file="/dev/null")
        try:
            session = server.new_session(session_name="h1_writer", start_directory=str(work),
                                         window_command="bash --norc --noprofile", x=100, y=30)
            pane = session.active_window.active_pane
            assert pane is not None
            pane.send_keys("cat > out.txt", enter=True)
            caps = work / "captures"
            caps.mkdir()
            t0 = time.perf_counter()
            for i, (k, kind) in enumerate(keys(n)):
                if kind == "text":
                    pane.send_keys(k, enter=False, literal=True)
                else:
                    pane.send_keys(k, enter=False)
                (caps / f"{i:04d}.txt").write_text("\n".join(pane.capture_pane()))
                subprocess.run(["git", "add", "."], cwd=work, check=True)
                subprocess.run(["git", "commit", "-q", "-m", f"h1_writer: {i}"], cwd=work, check=True)
            return (time.perf_counter() - t0) / n
        finally:
            server.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[float]] = {"seed way": [], "floor": [], "one commit": [], "ours (in-process)": [],
                                       "ours (socket client)": []}
    for _ in range(args.repeats):  # interleaved, so that machine noise hits every method alike
        results["seed way"].append(bench_seed(args.keys))
        results["floor"].append(bench_floor(args.keys))
        results["one commit"].append(bench_commit_only(args.keys))
        results["ours (in-process)"].append(bench_ours(args.keys, via_socket=False))
        results["ours (socket client)"].append(bench_ours(args.keys, via_socket=True))
    med = {k: statistics.median(v) * 1000 for k, v in results.items()}
    print(f"machine: {platform.node()} {platform.machine()}, {__import__('os').cpu_count()} cores, "
          f"Python {platform.python_version()}; {args.keys} keys x {args.repeats} repeats (median)")
    for k, v in med.items():
        print(f"  {k:22s} {v:8.3f} ms/key")
    budget = med["floor"] + med["one commit"]
    for name in ("ours (in-process)", "ours (socket client)"):
        print(f"  {name}: {med['seed way'] / med[name]:.1f}x faster than the seed way; "
              f"{med[name] / budget:.2f}x of (floor + one commit)")


if __name__ == "__main__":
    main()
