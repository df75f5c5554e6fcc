"""Capture: a person's or an agent's live tmux session recorded as a trajectory repository.

A read-only tmux control-mode client watches the session's output. Once the output pauses,
the pane is captured and the keys that explain the change are inferred from the line the
cursor is on: characters added to it were typed (`text`, at most 16 a commit), characters
removed were `BSpace`, the cursor moving on to a new line was `Enter` (`C-c` when the old
line ends in `^C`), an empty line turning into a bare prompt was `C-d`. Each inferred send
becomes one commit in the SPEC §3 format (`Keys`/`Kind`/`Seq`/`Time` trailers, the capture
under `.captures/{session}/`). It stops when the session ends, or on SIGINT/SIGTERM.

Limits (inference sees the screen, not the keyboard): cursor movement and editing inside a
line, full-screen programs and lines wider than the pane are not reconstructed key by key.

>>> infer_keys("$ ec", "$ echo hi", "$ echo hi", False, "$ ")
[('text', 'ho hi')]
>>> infer_keys("$ echo hi", "$ echo hi", "$ ", True, "$ ")
[('ctrl', 'Enter')]
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness_tower.errors import TowerError
from harness_tower.recorder import MAX_TEXT, ControlClient, check_keys

LOOKBACK = 200  # history lines fetched with each capture: how far a fast burst may scroll
PLATFORM_VERSION = "0.1.0"


class CaptureError(TowerError):
    """A session that cannot be captured: missing, unreachable, or an unusable output directory."""


class Commits:
    """One `git fast-import` stream into `repo`: a commit per call, the branch written at close."""

    def __init__(self, repo: Path) -> None:
        self.proc = subprocess.Popen(["git", "-C", str(repo), "fast-import", "--quiet", "--done"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.mark = 0

    def commit(self, message: str, when: float, files: list[tuple[str, bytes, int]]) -> None:
        assert self.proc.stdin is not None
        self.mark += 1
        msg = message.encode("utf-8")
        parts = [b"commit refs/heads/main\nmark :%d\ncommitter Tower Capture <capture@harness-evolve.invalid> "
                 b"%d +0000\ndata %d\n%s\n" % (self.mark, int(when), len(msg), msg)]
        if self.mark > 1:
            parts.append(b"from :%d\n" % (self.mark - 1))
        for path, data, mode in files:
            parts.append(b"M %o inline %s\ndata %d\n%s\n" % (mode, json.dumps(path).encode(), len(data), data))
        try:
            self.proc.stdin.write(b"".join(parts))
        except BrokenPipeError:
            raise CaptureError("git fast-import died while recording") from None

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.write(b"done\n")
        self.proc.stdin.close()
        if self.proc.wait(timeout=60) != 0:
            raise CaptureError(f"git fast-import failed: {self.proc.stderr.read().decode(errors='replace')[-200:]}")

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def infer_keys(old_row: str, old_row_now: str, new_row: str, moved: bool, prompt: str) -> list[tuple[str, str]]:
    """The sends that turn the cursor line `old_row` into what the screen shows now.

    `old_row_now` is that same line as it is now; `new_row` the cursor's line now; `moved`
    whether the cursor went on to a later line. Cursor lines are padded to the cursor column.
    """
    before, after = _infer(old_row, old_row_now, new_row, moved, prompt)
    return before + after


def _infer(old_row: str, old_row_now: str, new_row: str, moved: bool,
           prompt: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(edits of the old line, the key that left it and what was typed after)."""
    if not moved:  # both rows run to their cursor (spaces typed at the end count)
        if not old_row.strip() and prompt.strip() and old_row_now.rstrip() == prompt.rstrip():
            return [], [("ctrl", "C-d")]  # input ended at an empty line: the shell's prompt is back
        return _edit(old_row, old_row_now), []
    old, now = old_row.rstrip(), old_row_now.rstrip()
    key = "Enter"
    if now.endswith("^C"):
        key, now = "C-c", now[:-2]
    after = [("ctrl", key)]
    if prompt and new_row.startswith(prompt) and new_row.rstrip() != prompt.rstrip():
        after.append(("text", new_row.rstrip()[len(prompt):]))
    return _edit(old, now), after


def _edit(old: str, new: str) -> list[tuple[str, str]]:
    p = 0
    while p < min(len(old), len(new)) and old[p] == new[p]:
        p += 1
    keys = [("ctrl", "BSpace")] * (len(old) - p)
    if new[p:]:
        keys.append(("text", new[p:]))
    return keys


def split_sends(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for kind, k in keys:
        if kind == "text":
            out += [("text", k[i:i + MAX_TEXT]) for i in range(0, len(k), MAX_TEXT)]
        else:
            out.append((kind, k))
    return out


@dataclass
class _Pane:
    """One observation: the visible rows, the cursor, and the cursor line's absolute index."""

    rows: list[str]
    x: int
    y: int
    absolute: int
    history: dict[int, str] = field(default_factory=dict)  # absolute line -> text

    @property
    def cursor_row(self) -> str:
        """The cursor's line up to at least the cursor (a capture drops trailing spaces)."""
        return (self.rows[self.y] if 0 <= self.y < len(self.rows) else "").ljust(self.x)

    def text(self) -> str:
        return "\n".join(self.rows)


class SessionCapture:
    """Records one live session into a new trajectory repository at `out`."""

    def __init__(self, session: str, out: Path, socket: str | None = None, settle: float = 0.03,
                 prompt: str | None = None) -> None:
        self.session, self.out, self.socket, self.settle = session, Path(out), socket, settle
        self.tmux = ["tmux", *(["-S", socket] if socket else [])]
        self.prompt = prompt
        self.stop_event = threading.Event()
        self.seq = 0
        self.reason = "stopped"

    # -- set-up ---------------------------------------------------------------------------
    def _check(self) -> None:
        where = f" on socket {self.socket}" if self.socket else ""
        try:
            found = subprocess.run([*self.tmux, "has-session", "-t", f"={self.session}"],
                                   capture_output=True, timeout=10, check=False)
        except FileNotFoundError:
            raise CaptureError("tmux is not installed") from None
        except subprocess.TimeoutExpired:
            raise CaptureError(f"tmux{where} did not answer within 10s") from None
        if found.returncode != 0:
            raise CaptureError(f"no tmux session {self.session!r}{where}")
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise CaptureError(f"--out {self.out}: exists and is not an empty directory (choose a new one)")

    def _observe(self, client: ControlClient) -> _Pane:
        fmt = "'#{history_size} #{cursor_x} #{cursor_y} #{pane_height}'"
        target = f"-t ={self.session}:"
        info, lines = client.commands([f"display-message -p {target} {fmt}",
                                       f"capture-pane -p {target} -S -{LOOKBACK}"])
        hist, x, y, height = (int(v) for v in info[0].decode().split())
        text = [line.decode("utf-8", errors="replace") for line in lines]
        base = hist - min(hist, LOOKBACK)
        rows = text[-height:] if len(text) >= height else text
        return _Pane(rows, x, y, hist + y, {base + i: t for i, t in enumerate(text)})

    # -- the loop -------------------------------------------------------------------------
    def run(self, on_commit: Any = None) -> int:
        """Capture until the session ends or `stop()`; returns the number of key commits."""
        self._check()
        self.out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.out)], check=True)
        env = {k: v for k, v in os.environ.items() if k != "TMUX"}  # attachable from inside tmux too
        client = ControlClient(self.tmux, f"={self.session}", env)
        git = Commits(self.out)
        try:
            pane = self._observe(client)
            if self.prompt is None:  # an idle shell shows its prompt left of the cursor
                self.prompt = pane.cursor_row[:pane.x]
            manifest = {"kind": "capture", "run_id": "capture", "individual_id": self.session,
                        "genome_hash": None, "depth": 0, "task": None, "session": self.session,
                        "socket": self.socket, "prompt": self.prompt, "started": time.time(),
                        "platform_version": PLATFORM_VERSION}
            git.commit("init", time.time(), [
                (".tower/manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(), 0o100644),
                (f".captures/{self.session}/{0:06d}.txt", pane.text().encode("utf-8"), 0o100644)])
            while not self.stop_event.is_set():
                start = client.total
                if not client.wait_output(start, lambda out: len(out) > 0, 0.2):
                    if client.closed:
                        self.reason = "the session ended"
                        break
                    continue
                client.wait_quiet(self.settle, 2.0)
                try:
                    new = self._observe(client)
                except TowerError:
                    self.reason = "the session ended"
                    break
                for kind, keys, capture in self._sends(pane, new):
                    self._commit(git, kind, keys, capture)
                    if on_commit:
                        on_commit(kind, keys)
                pane = new
            result = {"status": "ok", "reason": self.reason, "commits": self.seq, "session": self.session}
            git.commit("done", time.time(), [(".tower/result.json",
                                              (json.dumps(result, indent=2, sort_keys=True) + "\n").encode(),
                                              0o100644)])
            git.close()
        except BaseException:
            git.abort()
            raise
        finally:
            client.close()
        subprocess.run(["git", "reset", "-q", "--hard", "HEAD"], cwd=self.out, check=True)
        return self.seq

    def stop(self, reason: str = "interrupted") -> None:
        self.reason = reason
        self.stop_event.set()

    def _sends(self, old: _Pane, new: _Pane) -> list[tuple[str, str, str]]:
        if new.absolute < old.absolute:
            return []  # the screen was cleared or the history trimmed: start again from here
        moved = new.absolute > old.absolute
        old_now = new.cursor_row if not moved else new.history.get(old.absolute, old.cursor_row)
        before, after = _infer(old.cursor_row, old_now, new.cursor_row, moved, self.prompt or "")
        out, row = [], old.cursor_row if not moved else old.cursor_row.rstrip()
        for kind, k in split_sends(before):
            # An edit of the old line gets that line as it stood right after the send.
            row = row[:-1] if k == "BSpace" and kind == "ctrl" else row + k
            rows = list(old.rows)
            if 0 <= old.y < len(rows):
                rows[old.y] = row
            out.append((kind, k, "\n".join(rows)))
        out += [(kind, k, new.text()) for kind, k in split_sends(after)]
        return out

    def _commit(self, git: Commits, kind: str, keys: str, capture: str) -> None:
        check_keys(keys, kind, self.session)
        self.seq += 1
        now = time.time()
        preview = json.dumps(keys, ensure_ascii=False)[1:-1] if kind == "text" else f"<{keys}>"
        message = (f"{self.session}: {preview}\n\nKeys: {json.dumps(keys)}\nKind: {kind}\n"
                   f"Seq: {self.seq}\nTime: {now:.6f}\n")
        git.commit(message, now, [(f".captures/{self.session}/{self.seq:06d}.txt", capture.encode("utf-8"),
                                   0o100644)])


def capture_session(session: str, out: Path, socket: str | None = None, prompt: str | None = None,
                    progress: Any = None) -> tuple[int, str]:
    """Capture with SIGINT/SIGTERM as the stop signal; returns (key commits, why it stopped)."""
    cap = SessionCapture(session, out, socket, prompt=prompt)
    handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handlers[sig] = signal.signal(sig, lambda *_: cap.stop("interrupted"))
    try:
        n = cap.run(progress)
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
    return n, cap.reason
