"""Who may talk to the recorder, and as whom.

A harness never names itself: the gateway decides who it is from how it connected.

- **Sealed harness processes.** The gateway starts every level (the top one for the
  evaluator, the others for the writer panes) as a sealed interpreter (`seal`) with its
  program on a pipe and one end of a socket pair; the other end is served bound to the one
  session that level types into. A request naming another session is refused and counted.
- **The launcher socket.** `python3 FILE` typed into a writer pane runs the launcher
  (`launch`), which connects here and asks to run FILE. The kernel says which process is
  connecting (`SO_PEERCRED`); its session id says which pane it runs in, and so which level
  the file becomes (a harness started from `h{k}_writer` types into `h{k-1}_writer`). The
  file must be `h{k-1}.py` (the file the validators measure as that level's code) and exactly
  what the trajectory last recorded; either refusal ends the evaluation with its reason. Its
  output is relayed back to the pane with control sequences removed.

Every request is untrusted input: requests are capped in size, launcher connections and
harness starts in number, relayed output in bytes. A cap that is reached ends the
evaluation (`fatal`) with its reason.
"""
from __future__ import annotations

import json
import os
import re
import select
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness_tower import proc
from harness_tower.errors import TowerError
from harness_tower.recorder import Recorder
from harness_tower.worktree import ChangedSinceRecorded

WRITER_RE = re.compile(r"h([1-9][0-9]?)_writer")
TASK_SESSION = "h1_writer"  # the task level's terminal
AUDIT_PREFIX = b'{"op": "audit"'  # how the seal's audit hook starts its reports (see seal.make_hook)
MAX_LAUNCH = 1 << 16  # bytes in a launcher's one request line
# Control sequences and control characters a harness might print to steer the terminal it
# was started from (CSI, OSC, single-character escapes, C0 controls but tab and newline).
_CONTROL = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])?|[\x00-\x08\x0b-\x1f\x7f]")


class Relay(Protocol):
    """The expert relay (harness_tower.backends.relay.ExpertRelay)."""

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]: ...


class TaskHost(Protocol):
    """The evaluator's side of a task sample: what the task level asks for and reports."""

    def next_task(self) -> dict[str, Any]:
        """Set up the next task and open its terminal: `{"instruction", "index", "count"}`, or
        `{"done": True}` when the sample is worked through."""
        ...

    def task_done(self) -> dict[str, Any]:
        """The level says it has finished the current task: check it (the result is kept on the
        evaluator's side and not told to the level: a check must not become an oracle)."""
        ...


@dataclass(frozen=True)
class GatewayCaps:
    """Bounds on what harnesses may ask of the recorder; a bound reached ends the evaluation."""

    max_request: int = 1 << 20          # bytes in one request line
    max_launchers: int = 16             # launcher connections open at once
    max_starts: int = 64                # harness processes started in one evaluation
    max_output: int = 1 << 20           # bytes of output relayed per harness


@dataclass
class Harness:
    """One running sealed level: its process, the session it is bound to, what it did."""

    session: str
    source: str
    proc: subprocess.Popen[bytes]
    pump: threading.Thread | None = None
    exited: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None) -> int | None:
        """The exit status, or None if it is still running after `timeout` seconds."""
        if not self.exited.wait(timeout):
            return None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass


class Gateway:
    """Starts sealed harnesses and serves their connections; answers the writer panes' launchers."""

    def __init__(self, recorder: Recorder, *, seal: Callable[[], list[str]], env: Mapping[str, str],
                 launcher_socket: Path, relay: Relay | None = None, caps: GatewayCaps = GatewayCaps(),
                 socket_owner: tuple[int, int] | None = None, tasks: TaskHost | None = None) -> None:
        self.recorder, self.seal, self.env, self.relay, self.caps = recorder, seal, dict(env), relay, caps
        self.tasks = tasks
        self.lock = threading.Condition()
        self.fatal: str | None = None
        self.audits: list[tuple[str, str, str]] = []      # (session, kind, detail)
        self.refusals: list[tuple[str, str]] = []         # (session, what was refused)
        self.harnesses: list[Harness] = []
        self._task_lock = threading.Lock()
        self._launchers = 0
        self._closed = False
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(launcher_socket))
        if socket_owner is not None:  # only the sandbox's own user (and root) may connect
            os.chown(launcher_socket, *socket_owner)
            os.chmod(launcher_socket, 0o660)
        else:
            os.chmod(launcher_socket, 0o600)
        self._server.listen(8)
        threading.Thread(target=self._accept, name="gateway-launchers", daemon=True).start()

    # --- evaluation state ---------------------------------------------------------------
    def fail(self, reason: str) -> None:
        """End the evaluation: the first reason wins; every harness is stopped."""
        with self.lock:
            if self.fatal is None:
                self.fatal = reason
            self.lock.notify_all()
        for harness in list(self.harnesses):
            harness.kill()

    def wait(self, harness: Harness, timeout: float) -> int | None:
        """Wait for `harness` to exit, the evaluation to fail, or `timeout`; its status or None."""
        with self.lock:
            self.lock.wait_for(lambda: harness.exited.is_set() or self.fatal is not None, timeout)
        return harness.proc.returncode if harness.exited.is_set() else None

    # --- starting sealed levels ---------------------------------------------------------
    def start(self, program: bytes, session: str, source: str, sink: Callable[[bytes], None]) -> Harness:
        """Start `program` sealed, bound to `session`; its output goes to `sink`."""
        with self.lock:
            if self.fatal is not None or self._closed:
                raise TowerError(f"the evaluation has ended: {self.fatal or 'closed'}")
            if len(self.harnesses) >= self.caps.max_starts:
                self.fail(f"gateway cap: more than {self.caps.max_starts} harness starts")  # the lock is re-entrant
                raise TowerError(f"more than {self.caps.max_starts} harness starts refused")
            if any(h.session == session and not h.exited.is_set() for h in self.harnesses):
                raise TowerError(f"a harness bound to {session} is already running")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        program_r, program_w = os.pipe()
        out_r, out_w = os.pipe()
        env = dict(self.env, TOWER_RECORDER_FD=str(theirs.fileno()), TOWER_SELF=source)
        try:
            proc = subprocess.Popen(self.seal(), stdin=program_r, stdout=out_w, stderr=out_w, env=env,
                                    pass_fds=(theirs.fileno(),), start_new_session=True, cwd="/")
        except OSError as exc:
            for fd in (program_r, program_w, out_r, out_w):
                os.close(fd)
            ours.close()
            theirs.close()
            raise TowerError(f"cannot start a sealed harness: {exc}") from None
        os.close(program_r)
        os.close(out_w)
        theirs.close()
        harness = Harness(session, source, proc)
        with self.lock:
            self.harnesses.append(harness)
        threading.Thread(target=_write_all, args=(program_w, program), name="gateway-program",
                         daemon=True).start()
        harness.pump = threading.Thread(target=self._pump, args=(out_r, sink), name=f"gateway-out-{session}",
                                        daemon=True)
        harness.pump.start()
        threading.Thread(target=self._serve, args=(ours, session), name=f"gateway-{session}", daemon=True).start()
        threading.Thread(target=self._reap, args=(harness,), name=f"gateway-reap-{session}", daemon=True).start()
        return harness

    def _reap(self, harness: Harness) -> None:
        harness.proc.wait()
        if harness.pump is not None:
            harness.pump.join(5.0)  # its last words reach the pane before the exit status
        with self.lock:
            harness.exited.set()
            self.lock.notify_all()

    def _pump(self, fd: int, sink: Callable[[bytes], None]) -> None:
        """Relay a harness's output (stdout and stderr) to `sink`, control sequences removed."""
        relayed = 0
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    return
                if relayed >= self.caps.max_output:
                    continue  # keep draining so that the harness never blocks on a full pipe
                text = _CONTROL.sub("", chunk.decode("utf-8", errors="replace")).encode()
                text = text[:self.caps.max_output - relayed]
                relayed += len(text)
                try:
                    sink(text)
                except OSError:
                    pass

    def connect(self, session: str) -> socket.socket:
        """A connection bound to `session` for a trusted in-process client (tests, benchmarks)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        threading.Thread(target=self._serve, args=(ours, session), name=f"gateway-{session}", daemon=True).start()
        return theirs

    # --- bound connections ----------------------------------------------------------------
    def _serve(self, sock: socket.socket, session: str) -> None:
        try:
            self._serve_stream(sock, session)
        except OSError:  # the harness went away mid-request or before reading its reply
            pass

    def _serve_stream(self, sock: socket.socket, session: str) -> None:
        with sock, sock.makefile("rwb") as stream:
            while True:
                line = stream.readline(self.caps.max_request + 1)
                if not line:
                    return
                if len(line) > self.caps.max_request and not line.endswith(b"\n"):
                    self.fail(f"gateway cap: {session}'s harness sent a request over "
                              f"{self.caps.max_request >> 10} KiB")
                    return
                if line.startswith(AUDIT_PREFIX):  # the audit hook's report: recorded, never answered
                    self._audit(session, line)
                    continue
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise TowerError("a request must be a JSON object")
                    reply = self._dispatch(session, request)
                    reply["ok"] = True
                except TowerError as exc:
                    reply = {"ok": False, "error": str(exc)}
                except Exception as exc:  # a request boundary: report it, keep serving
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                try:
                    stream.write(json.dumps(reply).encode() + b"\n")
                    stream.flush()
                except OSError:
                    return

    def _audit(self, bound: str, line: bytes) -> None:
        """What the sealed interpreter's audit hook refused. One-way: the hook reads no reply, so
        none is sent even for a line that does not parse (it would answer the harness's next call)."""
        try:
            req = json.loads(line)
        except ValueError:
            req = {"kind": "refused", "detail": line[:300].decode("ascii", "replace")}
        if not isinstance(req, dict):
            req = {}
        kind, detail = str(req.get("kind", "refused"))[:40], str(req.get("detail", ""))[:300]
        with self.lock:
            if len(self.audits) < 1000:
                self.audits.append((bound, kind, detail))

    def _dispatch(self, bound: str, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "expert":  # model calls leave the sandbox only through here (no network inside)
            if self.relay is None:
                raise TowerError("no expert endpoint is configured for this evaluation")
            return self.relay.handle(req)
        if op in ("task", "task_done"):  # only the task level works on tasks
            if bound != TASK_SESSION:
                with self.lock:
                    self.refusals.append((bound, op))
                raise TowerError(f"only the level bound to {TASK_SESSION} works on tasks; {op} refused")
            if self.tasks is None:  # an evaluation without a task sample: nothing to work through
                return {"done": True, "count": 0} if op == "task" else {"recorded": False}
            with self._task_lock:
                return self.tasks.next_task() if op == "task" else self.tasks.task_done()
        if op not in ("open", "send", "capture", "wait_output"):
            raise TowerError(f"unknown request {op!r}")
        asked = req.get("session")
        if asked != bound:
            what = f"{op} on {asked!r}"
            with self.lock:
                self.refusals.append((bound, what))
            raise TowerError(f"this level types only into {bound}; {what} refused")
        rec = self.recorder
        if op == "open":
            rec.open(bound)
            return {}
        if op == "send":
            keys, kind = req.get("keys"), req.get("kind")
            seq, _ = rec.send(bound, keys, kind, _number(req.get("settle_timeout"), 5.0, 60.0))  # type: ignore[arg-type]
            return {"seq": seq}
        if op == "capture":
            capture, cursor = rec.capture(bound)
            return {"capture": capture, "cursor": list(cursor)}
        return {"changed": rec.wait_output(bound, _number(req.get("timeout"), 1.0, 30.0))}

    # --- the writer panes' launchers --------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self.lock:
                over = self._launchers >= self.caps.max_launchers
                if not over:
                    self._launchers += 1
            if over:
                conn.close()
                self.fail(f"gateway cap: more than {self.caps.max_launchers} launcher connections at once")
                continue
            threading.Thread(target=self._launch, args=(conn,), name="gateway-launch", daemon=True).start()

    def _launch(self, conn: socket.socket) -> None:
        send_lock = threading.Lock()

        def send(message: dict[str, Any]) -> None:
            with send_lock:
                conn.sendall(json.dumps(message).encode() + b"\n")

        try:
            with conn:
                try:
                    harness = self._start_from_pane(conn, lambda b: send({"out": b.decode("utf-8", "replace")}))
                except TowerError as exc:
                    send({"error": str(exc)})
                    return
                # Until it exits: a launcher that goes away (C-c in its pane) takes its harness along.
                pidfd = os.pidfd_open(harness.proc.pid)
                try:
                    while not harness.exited.is_set():
                        ready, _, _ = select.select([conn.fileno(), pidfd], [], [], 1.0)
                        if conn.fileno() in ready and not conn.recv(4096):  # a launcher says nothing more: EOF
                            harness.kill()
                            return
                        if pidfd in ready:
                            harness.exited.wait(10.0)
                finally:
                    os.close(pidfd)
                send({"exit": harness.proc.returncode})
        except OSError:
            pass
        finally:
            with self.lock:
                self._launchers -= 1

    def _start_from_pane(self, conn: socket.socket, sink: Callable[[bytes], None]) -> Harness:
        pid, _, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        conn.settimeout(10.0)
        with conn.makefile("rb") as stream:
            line = stream.readline(MAX_LAUNCH + 1)
        conn.settimeout(None)
        if len(line) > MAX_LAUNCH and not line.endswith(b"\n"):
            self.fail(f"gateway cap: a launch request over {MAX_LAUNCH >> 10} KiB")
            raise TowerError(f"launch request over {MAX_LAUNCH >> 10} KiB refused")
        try:
            request = json.loads(line)
            argv = request["argv"]
            if request.get("op") != "spawn" or not isinstance(argv, list) or not argv or \
                    not all(isinstance(a, str) for a in argv):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise TowerError("malformed launch request") from None
        pane = self.recorder.session_of(_session_id(pid))
        match = WRITER_RE.fullmatch(pane or "")
        if pane is None or match is None:
            raise TowerError("harnesses are started only from a writer's pane")
        level = int(match.group(1))
        if level < 2:
            raise TowerError(f"{pane} is the task's terminal: there is no level below it")
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            raise TowerError("cannot tell where the launcher runs") from None
        full = os.path.normpath(os.path.join(cwd, argv[0]))
        root = str(self.recorder.work)
        if not full.startswith(root + os.sep):
            raise TowerError(f"{argv[0]} is not a file of the work tree")
        rel = full[len(root) + 1:]
        child = f"h{level - 1}.py"
        if rel != child:  # the level below is h{k-1}.py, the file the validators measure as its code
            self.fail(f"launch refused: {pane} runs only {child} as the level below, not {rel}")
            raise TowerError(f"{pane} runs only {child} as the level below, not {rel}")
        try:
            # A key still settling (the Enter that ran this launcher) commits its snapshot first:
            # what runs is compared with the newest recorded state, never a stale one.
            with self.recorder.lock:
                program = self.recorder.tree.recorded(rel)
        except ChangedSinceRecorded as exc:  # what would run is not what the trajectory recorded
            self.fail(f"launch refused: {exc}")
            raise
        return self.start(program, f"h{level - 1}_writer", child, sink)

    # --- end ----------------------------------------------------------------------------------
    def close(self) -> None:
        with self.lock:
            self._closed = True
        for harness in list(self.harnesses):
            harness.kill()
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        for harness in list(self.harnesses):
            harness.exited.wait(5.0)


def _session_id(pid: int) -> int:
    """The session id of a process (-1 when it has gone)."""
    found = proc.stat(pid)
    return -1 if found is None else found.session


def _number(value: object, default: float, most: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return max(0.0, min(float(value), most))


def _write_all(fd: int, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(data)
    except OSError:
        pass  # the harness died before reading its program
