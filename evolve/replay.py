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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

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



def _fmt(x: float) -> str:
    """An interval in seconds; "–" until one is measurable (a session's first key)."""
    return "–" if not math.isfinite(x) else f"{x:.4f}s"


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
    from rapidfuzz.distance import Indel

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


MAX_IDLE = 2.0  # seconds: a longer pause (a child running) plays back this long, like `asciinema play -i`
MIN_FRAME = 0.15  # seconds each frame stays at least at speed 1: keys recorded milliseconds apart stay readable
CONTROLS = "space pause · n/→ step · p/← back · q quit"


def delays(frames: list[Frame], speed: float = 1.0, max_idle: float = MAX_IDLE,
           min_frame: float = MIN_FRAME) -> Iterator[tuple[float, Frame]]:
    """(seconds to wait before the frame, frame): each recorded gap held within
    [min_frame, max_idle] (idle time compressed, bursts slowed to a readable pace), then
    divided by the speed."""
    prev: float | None = None
    for f in frames:
        gap = 0.0 if prev is None else min(max(f.time - prev, min_frame), max_idle)
        prev = f.time
        yield gap / speed, f


def screen(frame: Frame, k: int, n: int, width: int, height: int, controls: str = "") -> list[str]:
    """Frame k of n as at most `height` lines of at most `width` cells: two header lines
    (where, keys; the running metrics), then the end of the pane capture."""
    from rich.cells import set_cell_size

    keys = frame.keys if frame.kind == "text" else f"<{frame.keys}>"
    top = f"frame {k}/{n}  {frame.session} #{frame.seq}  keys {json.dumps(keys, ensure_ascii=False)}"
    metrics = (f"avg_interval {_fmt(frame.avg_interval)}  max_diff_len {frame.max_diff_len}  "
               f"syntax_ratio {frame.syntax_ratio:.3f}" + (f"  [{controls}]" if controls else ""))
    body = frame.capture.rstrip("\n").split("\n") if frame.capture.strip() else []
    lines = [top, metrics, *body[max(0, len(body) - (height - 2)):]][:height]
    return [set_cell_size(line, width).rstrip() if cell_len(line) > width else line for line in lines]


def cell_len(text: str) -> int:
    """Terminal cells `text` takes (a wide character takes two)."""
    from rich.cells import cell_len as cells

    return int(cells(text))


def frame_size(frames: list[Frame]) -> tuple[int, int]:
    """(width, height) a replay declares: the widest and tallest pane capture (the pane's
    own size), at least 80 x 24, plus the two header lines."""
    width = max([cell_len(line) for f in frames for line in f.capture.split("\n")] + [80])
    height = max([len(f.capture.rstrip("\n").split("\n")) for f in frames] + [22]) + 2
    return min(width, 400), min(height, 200)


def plain(frames: list[Frame], out: TextIO = sys.stdout) -> None:
    """Every frame one after the other, no escape sequences and no waiting (a pipe or a log)."""
    n = len(frames)
    for k, frame in enumerate(frames, 1):
        top, metrics, *body = screen(frame, k, n, 10**6, 10**6)
        out.write(f"=== {top}\n    {metrics}\n" + "".join(line + "\n" for line in body))
    out.flush()


class Keys:
    """Single keys from a terminal in cbreak mode (no echo, no line buffering); restored on close."""

    def __init__(self, stream: TextIO) -> None:
        import termios
        import tty

        self.fd = stream.fileno()
        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)

    def read(self, timeout: float | None) -> str | None:
        """The next key (an arrow as "right"/"left"), or None when `timeout` passes first."""
        import os
        import select

        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        key = os.read(self.fd, 1).decode(errors="replace")
        if key == "\x1b":  # an escape sequence: an arrow is ESC [ C / ESC [ D
            more, _, _ = select.select([self.fd], [], [], 0.05)
            seq = os.read(self.fd, 2).decode(errors="replace") if more else ""
            return {"[C": "right", "[D": "left"}.get(seq, "escape")
        return key

    def close(self) -> None:
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def play(frames: list[Frame], keys: Keys, *, speed: float = 1.0, max_idle: float = MAX_IDLE,
         min_frame: float = MIN_FRAME, out: TextIO = sys.stdout) -> None:
    """Play in the terminal at the recorded pace (see `delays`), each frame cut to the
    terminal's size; space pauses and resumes, n or → steps on, p or ← back, q quits."""
    waits = [w for w, _ in delays(frames, speed, max_idle, min_frame)]
    n, k, paused = len(frames), 0, False

    def draw() -> None:
        size = shutil.get_terminal_size()
        state = "paused" if paused else f"speed {speed:g}"
        lines = screen(frames[k], k + 1, n, size.columns, size.lines - 1, f"{state} · {CONTROLS}")
        out.write("\x1b[H\x1b[2J" + "\r\n".join(lines) + "\r\n")
        out.flush()

    out.write("\x1b[?25l")  # no cursor blinking over the frame
    try:
        draw()
        while True:
            if not paused and k == n - 1:
                return
            key = keys.read(None if paused else waits[k + 1])
            if key is None:  # the frame's time is up
                k += 1
            elif key == "q":
                return
            elif key == " ":
                paused = not paused
            elif key in ("n", "right"):
                paused, k = True, min(k + 1, n - 1)
            elif key in ("p", "left"):
                paused, k = True, max(k - 1, 0)
            draw()
    finally:
        out.write("\x1b[?25h\n")
        out.flush()


def asciicast(frames: list[Frame], speed: float, title: str, max_idle: float = MAX_IDLE,
              min_frame: float = MIN_FRAME) -> str:
    """The frames as an asciicast v2 recording (header line, then [time, "o", data] events),
    every frame within the width and height the header declares."""
    width, height = frame_size(frames)
    lines = [json.dumps({"version": 2, "width": width, "height": height,
                         "timestamp": int(frames[0].time) if frames else 0, "title": title,
                         "idle_time_limit": max_idle / speed,  # what the events hold already
                         "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"}})]
    clock = 0.0
    n = len(frames)
    for k, (wait, frame) in enumerate(delays(frames, speed, max_idle, min_frame), 1):
        clock += wait
        data = "\x1b[H\x1b[2J" + "\r\n".join(screen(frame, k, n, width, height))
        lines.append(json.dumps([round(clock, 6), "o", data], ensure_ascii=False))
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
