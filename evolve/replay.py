"""Replaying a trajectory keystroke by keystroke: frames, terminal playback, asciicast v2.

A frame is one key commit: the session (level), its sequence number, the keys sent, the
pane capture after they settled, and the running metrics of that session up to it.
"""
from __future__ import annotations

import ast
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rapidfuzz.distance import Indel

from evolve.errors import EvolveError

if TYPE_CHECKING:
    from validators.trajectory import Trajectory

MAX_GAP = 2.0  # seconds: a long pause (a child running) plays back at most this long


@dataclass(frozen=True)
class Frame:
    session: str
    seq: int
    kind: str
    keys: str
    time: float
    capture: str
    commits: int        # running metrics of this session up to this frame
    avg_interval: float
    max_diff_len: int
    syntax_ratio: float

    def header(self) -> str:
        keys = self.keys if self.kind == "text" else f"<{self.keys}>"
        return (f"{self.session} #{self.seq}  keys {json.dumps(keys, ensure_ascii=False)}  "
                f"avg_interval {_fmt(self.avg_interval)}s  max_diff_len {self.max_diff_len}  "
                f"syntax_ratio {self.syntax_ratio:.3f}")


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.4f}"


def load_frames(repo: Path, session: str | None = None, start_seq: int = 1) -> list[Frame]:
    """Frames of one session (or of every session, in recorded order) from a trajectory repo."""
    from validators.errors import ValidatorError
    from validators.trajectory import Trajectory, is_code

    try:
        traj = Trajectory.open(repo)
    except ValidatorError as exc:
        raise EvolveError(f"trajectory {repo}: {exc}") from None
    with traj:
        wanted = traj.resolve(session) if session else None
        parse_ok: dict[str, bool] = {}
        state: dict[str, _Running] = {}
        last_tree: dict[str, dict[str, str]] = {}
        frames: list[Frame] = []
        for commit, tree in traj.walk():
            if not commit.is_key or commit.session is None:
                continue
            name = commit.session
            if wanted and name != wanted:
                continue
            code = {p: b for p, b in tree.items() if is_code(p)}
            st = state.setdefault(name, _Running())
            prev = last_tree.get(name)
            if prev is not None:  # edit size against this session's previous commit
                diff = sum(_indel(traj, prev.get(p), code.get(p)) for p in set(prev) | set(code)
                           if prev.get(p) != code.get(p))
                st.max_diff = max(st.max_diff, diff)
            last_tree[name] = dict(code)
            valid = all(_parses(traj, b, parse_ok) for p, b in code.items() if p.endswith(".py"))
            st.commits += 1
            st.valid += valid
            t = _float(commit.trailers.fields.get("Time"))
            st.t0 = t if st.t0 is None else st.t0
            seq = int(commit.trailers.fields.get("Seq", "0") or 0)
            if seq < start_seq:
                continue
            capture_blob = next((c.new for c in commit.changes
                                 if c.path.startswith(f".captures/{name}/") and c.new), None)
            capture = traj.text(capture_blob) if capture_blob else ""
            frames.append(Frame(
                session=name, seq=seq, kind=commit.trailers.kind or "?", keys=commit.trailers.keys() or "",
                time=t, capture=capture, commits=st.commits,
                avg_interval=(t - st.t0) / (st.commits - 1) if st.commits > 1 else math.inf,
                max_diff_len=st.max_diff, syntax_ratio=st.valid / st.commits))
        return frames


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


@dataclass
class _Running:
    """One session's running metrics up to the frame being built."""

    commits: int = 0
    t0: float | None = None  # time of its first commit
    max_diff: int = 0
    valid: int = 0  # commits whose Python files all parse


def _indel(traj: Trajectory, old: str | None, new: str | None) -> int:
    a = traj.text(old) if old else ""
    b = traj.text(new) if new else ""
    return int(Indel.distance(a, b))


def _parses(traj: Trajectory, blob: str, cache: dict[str, bool]) -> bool:
    if blob not in cache:
        try:
            ast.parse(traj.blob(blob))
            cache[blob] = True
        except (SyntaxError, ValueError):
            cache[blob] = False
    return cache[blob]


def delays(frames: list[Frame], speed: float) -> Iterator[tuple[float, Frame]]:
    """(seconds to wait before the frame, frame), recorded gaps scaled by 1/speed and capped."""
    prev: float | None = None
    for f in frames:
        gap = 0.0 if prev is None else max(0.0, f.time - prev)
        prev = f.time
        yield min(gap, MAX_GAP) / speed, f


def play(frames: list[Frame], speed: float, out: TextIO = sys.stdout,
         sleep: Callable[[float], None] = time.sleep) -> None:
    """Draw each frame in the terminal with the recorded timing (scaled)."""
    for wait, frame in delays(frames, speed):
        if wait > 0:
            sleep(wait)
        out.write("\x1b[2J\x1b[H" + frame.header() + "\n" + "-" * 40 + "\n" + frame.capture.rstrip("\n") + "\n")
        out.flush()


def asciicast(frames: list[Frame], speed: float, title: str) -> str:
    """The frames as an asciicast v2 recording (header line, then [time, "o", data] events)."""
    width = max([len(line) for f in frames for line in f.capture.splitlines()]
                + [len(f.header()) for f in frames] + [80])
    height = max([len(f.capture.splitlines()) for f in frames] + [24]) + 2
    lines = [json.dumps({"version": 2, "width": min(width, 400), "height": min(height, 200),
                         "timestamp": int(frames[0].time) if frames else 0, "title": title,
                         "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"}})]
    clock = 0.0
    for wait, frame in delays(frames, speed):
        clock += wait
        screen = "\x1b[2J\x1b[H" + frame.header() + "\r\n" + frame.capture.rstrip("\n").replace("\n", "\r\n")
        lines.append(json.dumps([round(clock, 6), "o", screen], ensure_ascii=False))
    return "\n".join(lines) + "\n"


def checkout(repo: Path, dest: Path) -> None:
    """A plain git clone of a stored trajectory (for `git log -p`)."""
    if dest.exists() and any(dest.iterdir()):
        raise EvolveError(f"--checkout {dest}: exists and is not empty")
    if shutil.which("git") is None:
        raise EvolveError("git is not installed")
    proc = subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", "-c", "core.symlinks=false", str(repo),
                           str(dest)],
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise EvolveError(f"cannot clone trajectory {repo}: {proc.stderr.strip()[:300]}")
