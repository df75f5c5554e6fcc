"""The recorder: the only writer of the trajectory repository.

Every key send goes send -> settle (the keystroke's effect is visible in the pane's output
stream) -> capture -> exactly one commit. tmux is driven through one control-mode client
per session (no process spawned per key) and git through one `git fast-import` stream (no
process per commit).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness_tower import proc
from harness_tower.errors import TowerError
from harness_tower.worktree import TreeCaps, Unrecordable, WorkTree

CTRL_KEYS = frozenset({"Enter", "C-c", "C-d", "C-u", "C-l", "Escape", "BSpace", "Tab",
                       "Up", "Down", "Left", "Right", "Home", "End"})
MAX_TEXT = 16
SESSION_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_OCTAL = re.compile(rb"\\([0-7]{3})")
COMMITTER = b"Tower Recorder <recorder@harness-evolve.invalid>"
OUTPUT_TAIL = 1 << 16
QUIET = 0.002  # after a control key: output pausing this long ends its reply
MAX_SESSIONS = 16  # a tower of depth 8 needs 8; more is a harness opening sessions to exhaust us


class ControlClient:
    """One tmux control-mode client attached to one session: commands in, output events out."""

    def __init__(self, tmux: list[str], session: str, env: dict[str, str]) -> None:
        self.session = session
        self.proc = subprocess.Popen([*tmux, "-C", "attach-session", "-t", session],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        self._cond = threading.Condition()
        self._exclusive = threading.Lock()
        self._replies: deque[tuple[bool, list[bytes]]] = deque()
        self.output = bytearray()  # the newest bytes the pane produced (a bounded tail)
        self.total = 0  # how many bytes the pane produced since attach
        self.closed = False
        self._reader = threading.Thread(target=self._read, name=f"tmux-cc-{session}", daemon=True)
        self._reader.start()
        # attach-session answers with one (empty) block of its own; consume it first.
        with self._cond:
            deadline = time.monotonic() + 10
            while not self._replies and not self.closed and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            if not self._replies:
                raise TowerError("tmux control client did not attach", session=session)
            self._replies.clear()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        block: list[bytes] | None = None
        for raw in self.proc.stdout:
            line = raw.rstrip(b"\n")
            if block is not None:
                if line.startswith((b"%end ", b"%error ")):
                    with self._cond:
                        self._replies.append((line.startswith(b"%end"), block))
                        self._cond.notify_all()
                    block = None
                else:
                    block.append(line)
            elif line.startswith(b"%begin "):
                block = []
            elif line.startswith(b"%output "):
                data = line.split(b" ", 2)[2] if line.count(b" ") >= 2 else b""
                chunk = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), data)
                with self._cond:
                    self.output += chunk
                    self.total += len(chunk)
                    if len(self.output) > OUTPUT_TAIL:  # a flooding pane must not grow memory
                        del self.output[:len(self.output) - OUTPUT_TAIL]
                    self._cond.notify_all()
            elif line.startswith(b"%exit"):
                break
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def command(self, line: str, timeout: float = 10.0) -> list[bytes]:
        """Run one tmux command; returns its output lines; TowerError on %error or timeout."""
        return self.commands([line], timeout)[0]

    def commands(self, lines: list[str], timeout: float = 10.0) -> list[list[bytes]]:
        # One caller at a time: replies come back in order, and a second caller's clear() or
        # popleft() would take the first one's (a harness killed mid-request while the
        # evaluator captures its screen made one of them wait out the timeout).
        with self._exclusive:
            return self._commands(lines, timeout)

    def _commands(self, lines: list[str], timeout: float) -> list[list[bytes]]:
        assert self.proc.stdin is not None
        with self._cond:
            self._replies.clear()
        try:
            self.proc.stdin.write("".join(f"{line}\n" for line in lines).encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise TowerError("tmux control client is gone", session=self.session) from None
        deadline = time.monotonic() + timeout
        out: list[list[bytes]] = []
        with self._cond:
            while len(out) < len(lines):
                while not self._replies:
                    left = deadline - time.monotonic()
                    if self.closed or left <= 0:
                        what = "closed" if self.closed else f"did not answer within {timeout:g}s"
                        raise TowerError(f"tmux {what}: {lines[len(out)]}", session=self.session)
                    self._cond.wait(left)
                ok, body = self._replies.popleft()
                if not ok:
                    raise TowerError(f"tmux refused {lines[len(out)]!r}: {b' '.join(body).decode(errors='replace')}",
                                     session=self.session)
                out.append(body)
        return out

    def since(self, start: int) -> bytes:
        """Output produced after byte `start` (as much of it as the tail still holds)."""
        return bytes(self.output[max(0, len(self.output) - (self.total - start)):])

    def wait_output(self, start: int, done: Callable[[bytes], bool], timeout: float) -> bool:
        """Wait until `done(output since start)` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done(self.since(start)):
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return False
                self._cond.wait(left)
        return True

    def wait_quiet(self, quiet: float, limit: float) -> None:
        """Absorb output until none arrives for `quiet` seconds (at most `limit` seconds)."""
        deadline = time.monotonic() + limit
        with self._cond:
            while True:
                seen = self.total
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return
                self._cond.wait(min(quiet, left))
                if self.total == seen:
                    return

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=2)


def _echoed(expected: bytes) -> Callable[[bytes], bool]:
    """The pane output contains the expected bytes in order (escape sequences may interleave)."""
    def done(out: bytes) -> bool:
        pos = 0
        for b in expected:
            pos = out.find(b, pos)
            if pos < 0:
                return False
            pos += 1
        return True
    return done


@dataclass
class _Session:
    client: ControlClient
    pane: str
    pane_pid: int  # the pane's first process: every process in the pane has it as session id
    seq: int = 0
    shell_pid: int = -1  # the interactive shell (known once its first prompt shows)
    journal: list[tuple[int, str, str, str]] | None = None  # (seq, kind, keys, capture) while kept


class FastImport:
    """A `git fast-import` stream: one commit per call, blobs inline, refs written at close."""

    def __init__(self, git_dir: Path, ref: str = "refs/heads/main") -> None:
        self.git_dir, self.ref = git_dir, ref
        self.proc = subprocess.Popen(["git", "--git-dir", str(git_dir), "fast-import", "--quiet", "--done"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.mark = 0

    def commit(self, message: str, when: float, changes: list[tuple[str, bytes | None, int]]) -> None:
        """changes: (path, content or None for delete, mode)."""
        assert self.proc.stdin is not None
        self.mark += 1
        msg = message.encode("utf-8")
        parts = [b"commit %s\nmark :%d\ncommitter %s %d +0000\ndata %d\n%s\n"
                 % (self.ref.encode(), self.mark, COMMITTER, int(when), len(msg), msg)]
        if self.mark > 1:
            parts.append(b"from :%d\n" % (self.mark - 1))
        for path, data, mode in changes:
            p = _quote_path(path)
            if data is None:
                parts.append(b"D %s\n" % p)
            else:
                parts.append(b"M %o inline %s\ndata %d\n%s\n" % (mode, p, len(data), data))
        try:
            self.proc.stdin.write(b"".join(parts))
        except BrokenPipeError:
            raise TowerError(f"git fast-import died: {self._stderr()}") from None

    def close(self, timeout: float = 60.0) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(b"done\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise TowerError(f"git fast-import did not finish within {timeout:g}s") from None
        if code != 0:
            raise TowerError(f"git fast-import failed: {self._stderr()}")

    def abort(self) -> None:
        """Kill without `done`: fast-import then writes no ref, so no partial history appears."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _stderr(self) -> str:
        assert self.proc.stderr is not None
        try:
            return self.proc.stderr.read().decode(errors="replace").strip().splitlines()[-1]
        except (IndexError, OSError, ValueError):
            return "no message"


def _quote_path(path: str) -> bytes:
    """A path as `git fast-import` reads it: C-style quoted when it needs to be.

    Inside the quotes any byte may appear raw (UTF-8 names stay as they are) except the
    double quote and backslash, which are escaped, and control characters, in octal.
    """
    raw = path.encode("utf-8")
    if not any(b < 0x20 or b in (0x22, 0x5C, 0x7F) for b in raw) and not raw.startswith(b" "):
        return raw
    out = bytearray(b'"')
    for b in raw:
        if b in (0x22, 0x5C):
            out += b"\\" + bytes([b])
        elif b == 0x0A:
            out += b"\\n"
        elif b < 0x20 or b == 0x7F:
            out += b"\\%03o" % b
        else:
            out.append(b)
    return bytes(out + b'"')


class Recorder:
    """Owns the tmux server's sessions and the trajectory repository of one evaluation.

    `shell(session)` gives the command a new pane runs (the sandbox confines it). The
    manifest and the result are written into the history only, never into the work tree:
    nothing a harness can reach is ever read back as trusted.
    """

    def __init__(self, tmux: list[str], env: dict[str, str], work: Path, git_dir: Path,
                 shell: Callable[[str], str], width: int, height: int, caps: TreeCaps | None = None) -> None:
        self.tmux, self.env, self.work, self.git_dir, self.shell = tmux, env, work, git_dir, shell
        self.width, self.height = width, height
        self.sessions: dict[str, _Session] = {}
        self.lock = threading.RLock()
        self.tree = WorkTree(work, caps or TreeCaps())
        self.git = FastImport(git_dir)
        self.commits = 0
        self.unsettled = 0
        self._last_commit_ns = 0
        self.closed = False
        self.last_capture: dict[str, str] = {}
        self.fatal: str | None = None
        self.on_fatal: Callable[[str], None] = lambda reason: None

    def evidence(self, settle: bool = False) -> tuple[list[str], dict[str, int]]:
        """Each session's screen as it is now (or last recorded) and its output byte count.

        With `settle`, first let every terminal finish drawing (output pausing 50 ms, at most 2 s):
        judging a failure by a half-read flood would misname it.
        """
        screens, output = [], {}
        for name, sess in self.sessions.items():
            if settle:
                sess.client.wait_quiet(0.05, 2.0)
            output[name] = sess.client.total
            try:
                screens.append(self.capture(name)[0])
            except TowerError:
                screens.append(self.last_capture.get(name, ""))
        return screens, output

    # --- repository -------------------------------------------------------------------
    def init_commit(self, manifest: dict[str, object]) -> None:
        """The root commit `init`: the manifest (in the history only) and the work tree (h{N}.py)."""
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        with self.lock:
            self._commit("init", [(".tower/manifest.json", text.encode(), 0o100644)])

    def _commit(self, message: str, extra: list[tuple[str, bytes | None, int]]) -> None:
        """One commit: the work tree's changes (unless it cannot be recorded) plus `extra`."""
        now = time.time_ns()
        changes: list[tuple[str, bytes | None, int]] = []
        failure: Unrecordable | None = None
        if self.fatal is None:
            try:
                changes = self.tree.changes(self._last_commit_ns)
            except Unrecordable as exc:
                failure = exc
        self.git.commit(message, now / 1e9, changes + extra)
        self._last_commit_ns = now
        self.commits += 1
        if failure is not None:
            self.fail(f"work tree cannot be recorded: {failure}")
            raise failure

    def fail(self, reason: str) -> None:
        """Stop recording the work tree; the evaluation ends as failed with `reason`."""
        if self.fatal is None:
            self.fatal = reason
            self.on_fatal(reason)

    def finish(self, result: dict[str, object], deliver_to: Path) -> dict[str, object]:
        """The closing `done` commit with `.tower/result.json`; then the history is checked out
        into `deliver_to` (a fresh directory: nothing a harness left behind comes along).

        The work tree is snapshotted first: one that became unrecordable after the last key
        turns the result into `failed` with that reason. Returns the result as committed.
        """
        with self.lock:
            self.closed = True
            changes: list[tuple[str, bytes | None, int]] = []
            if self.fatal is None:
                try:
                    changes = self.tree.changes(self._last_commit_ns)
                except Unrecordable as exc:
                    self.fail(f"work tree cannot be recorded: {exc}")
                    result = dict(result, status="failed", error=self.fatal)
            result = dict(result, commits=self.commits, unsettled=self.unsettled)
            text = json.dumps(result, indent=2, sort_keys=True) + "\n"
            self.git.commit("done", time.time(), changes + [(".tower/result.json", text.encode(), 0o100644)])
            self.commits += 1
            self.git.close()
            self.tree.close()
        deliver_to.mkdir(parents=True)
        shutil.move(str(self.git_dir), deliver_to / ".git")
        # Links a harness made are checked out as plain files naming their target: nothing that
        # opens the delivered trajectory later follows one of them out of it.
        for args in (["config", "core.bare", "false"], ["config", "core.symlinks", "false"],
                     ["checkout", "-q", "-f", "main"]):
            subprocess.run(["git", "-C", str(deliver_to), *args], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return result

    def abort(self) -> None:
        with self.lock:
            self.closed = True
            self.git.abort()
            self.tree.close()

    # --- sessions ---------------------------------------------------------------------
    def open(self, name: str) -> None:
        if not SESSION_RE.match(name):
            raise TowerError(f"invalid session name {name!r}")
        with self.lock:
            if self.closed:
                raise TowerError("recorder is closed", session=name)
            if name in self.sessions:
                return
            if len(self.sessions) >= MAX_SESSIONS:
                self.fail(f"more than {MAX_SESSIONS} sessions opened")
                raise TowerError(f"more than {MAX_SESSIONS} sessions refused", session=name)
            subprocess.run([*self.tmux, "new-session", "-d", "-s", name, "-x", str(self.width),
                            "-y", str(self.height), "-c", str(self.work), self.shell(name)],
                           env=self.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            client = ControlClient(self.tmux, name, self.env)
            pane, pid = client.command(f"display-message -p -t {name} '#{{pane_id}} #{{pane_pid}}'")[0].split()
            sess = _Session(client, pane.decode(), int(pid))
            self.sessions[name] = sess
        # The shell is ready once its prompt shows.
        deadline = time.monotonic() + 10
        while not self.capture(name)[0].rstrip().endswith("$"):
            if time.monotonic() > deadline:
                raise TowerError("shell prompt did not appear within 10s", session=name)
            client.wait_output(client.total, lambda out: len(out) > 0, 0.5)
        sess.shell_pid = _shell_of(sess.pane_pid)

    def seq(self, name: str) -> int:
        """How many keys session `name` has been sent (its last commit's `Seq`)."""
        return self._session(name).seq

    def keep_journal(self, name: str) -> None:
        """From now on keep what session `name` is sent and shows, key by key (see `journal`);
        what was kept before is dropped. The history cannot be read while it is being written,
        so this is how the evaluator judges a task the moment it is finished."""
        with self.lock:
            self._session(name).journal = []

    def output_bytes(self, name: str, settle: bool = False) -> int:
        """How many bytes session `name`'s pane has produced since it was opened; with `settle`,
        once its output has paused (50 ms, at most 2 s: a flood is counted, not half of it)."""
        client = self._session(name).client
        if settle:
            client.wait_quiet(0.05, 2.0)
        return client.total

    def journal(self, name: str) -> list[tuple[int, str, str, str]]:
        """(seq, kind, keys, capture) of every key since `keep_journal`."""
        with self.lock:
            return list(self._session(name).journal or [])

    def renew(self, name: str) -> None:
        """Give session `name` a fresh pane (the sandbox says where it starts): everything running
        in the old one ends; the session's key sequence goes on."""
        with self.lock:
            old = self.sessions.pop(name, None)
            if old is not None:
                old.client.close()
                subprocess.run([*self.tmux, "kill-session", "-t", f"={name}"], env=self.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                _kill_session_processes(old.pane_pid)
        self.open(name)
        if old is not None:
            with self.lock:
                self.sessions[name].seq = old.seq

    def session_of(self, sid: int) -> str | None:
        """The session whose pane has session id `sid` (the processes running in that pane)."""
        for name, sess in list(self.sessions.items()):
            if sess.pane_pid == sid:
                return name
        return None

    def _session(self, name: str) -> _Session:
        try:
            return self.sessions[name]
        except KeyError:
            raise TowerError("unknown session (open it first)", session=name) from None

    def capture(self, name: str) -> tuple[str, tuple[int, int]]:
        """The pane's screen and cursor (x, y), in one round trip to tmux."""
        sess = self._session(name)
        text, pos = sess.client.commands([f"capture-pane -p -t {sess.pane}",
                                          f"display-message -p -t {sess.pane} '#{{cursor_x}} #{{cursor_y}}'"])
        x, y = pos[0].split()
        return b"\n".join(text).decode("utf-8", errors="replace"), (int(x), int(y))

    def _screen(self, sess: _Session) -> str:
        """The screen alone: what a commit records (no cursor query on the per-key path)."""
        return b"\n".join(sess.client.command(f"capture-pane -p -t {sess.pane}")).decode("utf-8", errors="replace")

    def wait_output(self, name: str, timeout: float) -> bool:
        client = self._session(name).client
        return client.wait_output(client.total, lambda out: len(out) > 0, max(0.0, min(timeout, 30.0)))

    def send(self, name: str, keys: str, kind: str, settle_timeout: float = 5.0) -> tuple[int, str]:
        """Send, settle, capture, commit. Returns (seq, capture)."""
        check_keys(keys, kind, name)
        with self.lock:
            if self.closed or self.fatal:
                raise TowerError(f"recorder is closed{': ' + self.fatal if self.fatal else ''}", session=name)
            sess = self._session(name)
            client = sess.client
            start = client.total
            if kind == "text":
                hexes = " ".join(f"{b:02x}" for b in keys.encode("utf-8"))
                client.command(f"send-keys -t {sess.pane} -H {hexes}")
                visible = bytes(b for b in keys.encode("utf-8") if b >= 0x20 and b != 0x7F)
                settled = client.wait_output(start, _echoed(visible), settle_timeout)
            else:
                client.command(f"send-keys -t {sess.pane} {keys}")
                settled = client.wait_output(start, lambda out: len(out) > 0, min(settle_timeout, 1.0))
                if settled:  # let the reply to a control key finish drawing
                    self._settle(sess, settle_timeout)
            if not settled:
                self.unsettled += 1
            sess.seq += 1
            capture = self._screen(sess)
            self.last_capture[name] = capture
            if sess.journal is not None:
                sess.journal.append((sess.seq, kind, keys, capture))
            preview = json.dumps(keys, ensure_ascii=False)[1:-1] if kind == "text" else f"<{keys}>"
            message = (f"{name}: {preview}\n\nKeys: {json.dumps(keys)}\nKind: {kind}\n"
                       f"Seq: {sess.seq}\nTime: {time.time():.6f}\n")
            path = f".captures/{name}/{sess.seq:06d}.txt"
            self._commit(message, [(path, capture.encode("utf-8"), 0o100644)])
            return sess.seq, capture

    def _settle(self, sess: _Session, limit: float) -> None:
        """Wait until the pane's output pauses while its foreground job is not runnable.

        A quiet window alone is what load stretches: a command that has not yet been given
        the CPU prints nothing for a while. So the pause counts only once the terminal's
        foreground process is asleep (waiting for input, a child, a timer or the recorder),
        which does not depend on how busy the machine is.
        """
        client = sess.client
        deadline = time.monotonic() + limit
        while True:
            client.wait_quiet(QUIET, max(0.0, deadline - time.monotonic()))
            if foreground_asleep(sess.pane_pid, sess.shell_pid) or time.monotonic() >= deadline:
                return
            client.wait_output(client.total, lambda out: len(out) > 0,
                               min(0.01, max(0.0, deadline - time.monotonic())))

    def close_clients(self) -> None:
        for sess in self.sessions.values():
            sess.client.close()


def foreground_asleep(pane_pid: int, shell_pid: int) -> bool:
    """Whether the foreground job of the terminal that `pane_pid` runs on is asleep.

    /proc/PID/stat gives the terminal's foreground process group (`tpgid`). At the prompt
    that is the shell itself, and its state says enough. A job's group is settled only when
    every member is asleep (not running or runnable, R; not in uninterruptible I/O, D) and
    none is still a shell fork that has not started its program yet: bash forks each stage
    of a pipeline and the forks wait, asleep, until the whole group is set up, so "asleep"
    alone would end the wait before the pipeline ran. A group whose members have all gone is
    not settled either: the shell is about to take the terminal back.
    """
    pane = proc.stat(pane_pid)
    if pane is None or pane.tpgid <= 0:
        return True  # the pane has gone, or holds no terminal: nothing more will be drawn
    if pane.tpgid == shell_pid:
        shell = proc.stat(shell_pid)
        return shell is not None and not shell.busy
    # The job's members among the shell's descendants: a walk of a few children lists, not a
    # scan of every process on the machine (~2 ms for 70 processes, paid per control key).
    # Only when the walk finds none (members orphaned from the shell's tree, a kernel without
    # children lists) is /proc scanned for the group.
    members = [st for st in map(proc.stat, _descendants(shell_pid)) if proc.live(st) and st.pgrp == pane.tpgid]
    if not members:
        members = [st for st in map(proc.stat, proc.pids()) if proc.live(st) and st.pgrp == pane.tpgid]
    if not members:
        return False
    return all(not st.busy and not (st.comm == b"bash" and st.ppid == shell_pid) for st in members)


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, from the children lists of each of its threads."""
    if pid <= 0:
        return []
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            threads = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except (OSError, ValueError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def _shell_of(pane_pid: int) -> int:
    """The pane's interactive shell: at its first prompt it holds the terminal (tpgid)."""
    pane = proc.stat(pane_pid)
    return -1 if pane is None else pane.tpgid


def _kill_session_processes(sid: int) -> None:
    """SIGKILL what still runs in a closed pane (its processes share the pane's session id)."""
    for found in map(proc.stat, proc.pids()):
        if found is not None and found.session == sid:
            with contextlib.suppress(OSError):
                os.kill(found.pid, signal.SIGKILL)


def check_keys(keys: object, kind: object, session: str | None = None) -> None:
    """The rules of a send: text is 1..16 characters, ctrl is one allowlisted key name."""
    if kind == "text":
        if not isinstance(keys, str) or not keys:
            raise TowerError("text send must be a non-empty string", session=session)
        if len(keys) > MAX_TEXT:
            raise TowerError(f"text send of {len(keys)} characters refused (at most {MAX_TEXT})", session=session)
        control = next((c for c in keys if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0), None)
        if control is not None:  # a control key inside text would pass the allowlist by (C-z as \x1a)
            raise TowerError(f"text send holding the control character {control!r} refused "
                             "(control keys are ctrl sends)", session=session)
    elif kind == "ctrl":
        if keys not in CTRL_KEYS:
            raise TowerError(f"control key {keys!r} refused (allowed: {', '.join(sorted(CTRL_KEYS))})",
                             session=session)
    else:
        raise TowerError(f"unknown send kind {kind!r} (text or ctrl)", session=session)

