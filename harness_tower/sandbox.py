"""The sandbox: a private tmux server, a trajectory repository as working directory, a
scrubbed environment, resource limits, a wall-clock timeout, and a teardown that leaves
no tmux server and no process behind.

>>> # with Sandbox(Path("out")) as box:           # doctest: +SKIP
>>> #     box.write("h2.py", source); outcome = box.run(["python3", "h2.py"], timeout=60)
"""
from __future__ import annotations

import json
import os
import resource
import secrets
import shlex
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness_tower
from harness_tower.errors import TowerError
from harness_tower.recorder import Recorder

PROJECT_ROOT = str(Path(harness_tower.__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits for harnesses and every pane shell."""

    cpu_seconds: int = 600
    memory_bytes: int = 2 << 30
    file_bytes: int = 64 << 20
    processes: int = 256


@dataclass(frozen=True)
class Outcome:
    returncode: int | None
    timed_out: bool
    wall_seconds: float
    stderr_tail: str


class _Handler(socketserver.StreamRequestHandler):
    """One harness connection: JSON requests in, JSON replies out, errors as replies."""

    def handle(self) -> None:
        recorder: Recorder = self.server.recorder  # type: ignore[attr-defined]
        for line in self.rfile:
            try:
                req = json.loads(line)
                reply = self._dispatch(recorder, req)
                reply["ok"] = True
            except TowerError as exc:
                reply = {"ok": False, "error": str(exc)}
            except Exception as exc:  # a request boundary: report, keep serving
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            try:
                self.wfile.write(json.dumps(reply).encode() + b"\n")
                self.wfile.flush()
            except OSError:
                return

    @staticmethod
    def _dispatch(recorder: Recorder, req: dict[str, Any]) -> dict[str, Any]:
        op, session = req.get("op"), req.get("session")
        if not isinstance(session, str):
            raise TowerError("request without a session name")
        if op == "open":
            recorder.open(session)
            return {}
        if op == "send":
            seq, _ = recorder.send(session, req.get("keys"), req.get("kind"),  # type: ignore[arg-type]
                                   float(req.get("settle_timeout", 5.0)))
            return {"seq": seq}  # the screen is committed; a harness that wants it asks (capture)
        if op == "capture":
            capture, cursor = recorder.capture(session)
            return {"capture": capture, "cursor": list(cursor)}
        if op == "wait_output":
            return {"changed": recorder.wait_output(session, float(req.get("timeout", 1.0)))}
        if op == "expert":  # model calls leave the sandbox only through here (no network inside)
            from harness_tower.backends import relay
            return relay.handle(req, recorder.work)
        raise TowerError(f"unknown request {op!r}")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Sandbox:
    """One evaluation's isolated terminal world; use as a context manager.

    Isolation `process`: harnesses and pane shells run under resource limits as an
    unprivileged user (when started as root), with the git directory outside the work
    tree and the tmux socket unreachable. `bwrap` adds namespaces: no network, a read-only
    system, a private /tmp, only the work tree writable, no view of other processes.
    """

    def __init__(self, out_dir: Path, *, width: int = 100, height: int = 30, limits: Limits = Limits(),
                 isolation: str = "auto") -> None:
        self.out_dir = Path(out_dir).absolute()
        self.work = self.out_dir / "tmux_outputs"  # where the finished trajectory ends up
        self.width, self.height, self.limits = width, height, limits
        self.isolation = resolve_isolation(isolation)
        self.token = uuid.uuid4().hex
        # Short paths (tmux socket paths must stay < 108 bytes); TOWER_TMPDIR moves them (e.g. a soak).
        self.tmp = Path(tempfile.mkdtemp(prefix="hes-", dir=os.environ.get("TOWER_TMPDIR", "/tmp")))
        self.socket = self.tmp / "tmux" / "tmux.sock"
        # While harnesses run, their work tree lives in the sandbox's own directory (reachable
        # for them wherever --out is) and the git directory beside it, out of their reach.
        self.live = self.tmp / "w" / "tmux_outputs"
        self.git_dir = self.tmp / "git"
        self.recorder_socket = self.tmp / "rec.sock"
        self.tmux = ["tmux", "-S", str(self.socket), "-f", "/dev/null"]
        self.drop_uid = os.geteuid() == 0  # harnesses never run as root
        self.uid = SANDBOX_UIDS[secrets.randbelow(len(SANDBOX_UIDS))]
        self.recorder: Recorder | None = None
        self._server: _Server | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.log = self.out_dir / "harness.log"

    # --- set-up -----------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        try:
            self._start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.tmp / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.tmp / "home"),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "TERM": "tmux-256color",
            "HISTFILE": "/dev/null", "PS1": "$ ", "PS2": "> ",
            "PYTHONPATH": PROJECT_ROOT, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
            "TOWER_RECORDER": str(self.recorder_socket), "TOWER_SANDBOX": self.token,
        }

    def confine(self, argv: list[str], *, interactive: bool) -> list[str]:
        """Wrap a command so that it runs inside this sandbox's isolation level."""
        prefix: list[str] = []
        if self.isolation == "bwrap":
            home = str(self.tmp / "home")
            prefix += ["bwrap", "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc",
                       "--unshare-uts", "--unshare-cgroup-try", "--hostname", "tower",
                       "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                       "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
            # Directories bwrap makes on its own are 0700 (root's): make the way down traversable.
            made: set[str] = set()
            for target in (self.live, self.tmp / "bin", self.recorder_socket, Path(home)):
                for parent in reversed(target.parents):
                    if str(parent).startswith("/tmp/") and str(parent) not in made:
                        made.add(str(parent))
                        prefix += ["--perms", "0755", "--dir", str(parent)]
            # What harnesses import and run must stay visible even where it lives under /tmp
            # (a checkout in /tmp, say): the project's op library and the interpreter.
            for keep in _visible_under_tmp():
                for parent in reversed(Path(keep).parents):
                    if str(parent).startswith("/tmp/") and str(parent) not in made:
                        made.add(str(parent))
                        prefix += ["--perms", "0755", "--dir", str(parent)]
                prefix += ["--ro-bind", keep, keep]
            prefix += ["--bind", str(self.live), str(self.live),
                       "--ro-bind", str(self.tmp / "bin"), str(self.tmp / "bin"),
                       "--bind", str(self.recorder_socket), str(self.recorder_socket),
                       "--perms", "0777", "--dir", home, "--chdir", str(self.live)]
            if not interactive:  # a pane shell keeps its controlling terminal; others lose theirs
                prefix.append("--new-session")
        if self.drop_uid:
            prefix += ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                       "--inh-caps=-all", "--bounding-set=-all"]
        return prefix + argv

    def _shell(self) -> str:
        lim = self.limits
        shell = self.confine(["env", "-u", "TMUX", "-u", "TMUX_PANE", "PS1=$ ", "PS2=> ",
                              "bash", "--norc", "--noprofile", "+H"], interactive=True)
        nproc = f"-u {lim.processes} " if self.drop_uid else ""
        return (f"ulimit -S -t {lim.cpu_seconds} -v {lim.memory_bytes // 1024} -f {lim.file_bytes // 1024} "
                f"{nproc}2>/dev/null; exec {shlex.join(shell)}")

    def _start(self) -> None:
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise TowerError(f"{self.out_dir}: output directory is not empty")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.tmp, 0o711)  # traversable to reach rec.sock, bin/ and w/, not listable
        for sub, mode in (("home", 0o700), ("bin", 0o755), ("tmux", 0o700), ("w", 0o755)):
            (self.tmp / sub).mkdir(mode=mode)
            os.chmod(self.tmp / sub, mode)
        self.live.mkdir()
        if self.drop_uid:
            for path in (self.live, self.tmp / "home"):
                os.chown(path, self.uid, self.uid)
        os.symlink(os.path.realpath(sys.executable), self.tmp / "bin" / "python3")  # stdlib-only harnesses
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.git_dir)], check=True)
        env = self.env()
        # The server holds a placeholder session so that it outlives the writers' sessions.
        subprocess.run([*self.tmux, "new-session", "-d", "-s", "_tower", "-x", str(self.width),
                        "-y", str(self.height), "exec sleep 2147483647", ";",
                        "set-option", "-g", "history-limit", "2000", ";",
                        "set-option", "-g", "status", "off"],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.recorder = Recorder(self.tmux, env, self.live, self.git_dir, self._shell(), self.width, self.height)
        self._server = _Server(str(self.recorder_socket), _Handler)
        os.chmod(self.recorder_socket, 0o666)
        self._server.recorder = self.recorder  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, name="recorder-server", daemon=True).start()

    def write(self, name: str, text: str) -> None:
        (self.live / name).write_text(text, encoding="utf-8")

    # --- running ----------------------------------------------------------------------
    def run(self, argv: list[str], timeout: float) -> Outcome:
        """Run the top level in the work tree with limits; kill it (and all it started) on timeout."""
        lim = self.limits
        drop = self.drop_uid

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds))
            resource.setrlimit(resource.RLIMIT_AS, (lim.memory_bytes, lim.memory_bytes))
            resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_bytes, lim.file_bytes))
            if drop:  # counted per user: only meaningful for the unprivileged one
                resource.setrlimit(resource.RLIMIT_NPROC, (lim.processes, lim.processes))

        argv = [str(self.tmp / "bin" / "python3") if a == "python3" else a for a in argv]
        start = time.monotonic()
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(self.confine(argv, interactive=False), cwd=self.live, env=self.env(),
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          start_new_session=True, preexec_fn=limit)
            timed_out = False
            try:
                code: int | None = self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out, code = True, None
                self._kill_group()
        wall = time.monotonic() - start
        tail = self.log.read_bytes()[-4000:].decode("utf-8", errors="replace").strip().splitlines()
        return Outcome(code, timed_out, wall, tail[-1] if tail else "")

    def _kill_group(self) -> None:
        if self._proc and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()

    # --- teardown ---------------------------------------------------------------------
    def finish(self, result: dict[str, Any]) -> None:
        """Stop every process, then write the closing commit: the trajectory is complete."""
        self._stop_processes()
        if self.drop_uid:  # hand the work tree back to its owner before git takes it
            _chown_tree(self.live, os.geteuid(), os.getegid())
        if self.recorder:
            self.recorder.finish(result)
            self.recorder = None
        self._deliver()

    def _deliver(self) -> None:
        """Move the work tree (with its history, when finished) to `out_dir/tmux_outputs`."""
        if self.live.exists() and not self.work.exists():
            shutil.move(str(self.live), str(self.work))

    def teardown(self) -> None:
        self._stop_processes()
        if self.recorder:  # never finished: no history joins the work tree, nothing looks complete
            self.recorder.abort()
            self.recorder = None
            if self.drop_uid and self.live.exists():
                _chown_tree(self.live, os.geteuid(), os.getegid())
            self._deliver()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _stop_processes(self) -> None:
        self._kill_group()
        subprocess.run([*self.tmux, "kill-server"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.recorder:
            self.recorder.close_clients()
        sweep(self.token)


# Harnesses run as a user of their own, so that one sandbox's fork bomb cannot spend
# another's process limit (RLIMIT_NPROC counts per user). No passwd entry is needed.
SANDBOX_UIDS = range(200_000, 1_000_000)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            try:
                os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
            except OSError:
                pass
    os.chown(root, uid, gid)
_ISOLATION_PROBE: dict[str, bool] = {}


def _visible_under_tmp() -> list[str]:
    """Paths below /tmp that sandboxed harnesses need read-only: the project, the interpreter."""
    interpreter = os.path.realpath(sys.executable)
    wanted = [PROJECT_ROOT, sys.base_prefix, os.path.dirname(interpreter)]
    return sorted({p for p in wanted if p.startswith("/tmp/")})


def bwrap_works() -> bool:
    """bubblewrap is installed and can create the namespaces we use on this machine."""
    if "bwrap" not in _ISOLATION_PROBE:
        ok = False
        if shutil.which("bwrap"):
            probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                                    "--unshare-net", "--unshare-pid", "--die-with-parent", "true"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ok = probe.returncode == 0
        _ISOLATION_PROBE["bwrap"] = ok
    return _ISOLATION_PROBE["bwrap"]


def resolve_isolation(isolation: str) -> str:
    """`auto` -> `bwrap` where it works, else `process`; an explicit `bwrap` must work."""
    if isolation == "auto":
        return "bwrap" if bwrap_works() else "process"
    if isolation == "bwrap" and not bwrap_works():
        raise TowerError("isolation 'bwrap' requested but bubblewrap is missing or cannot create namespaces")
    if isolation not in ("process", "bwrap"):
        raise TowerError(f"unknown isolation {isolation!r} (auto, process or bwrap)")
    return isolation


def sweep(token: str, timeout: float = 5.0) -> int:
    """SIGKILL every process whose environment carries the sandbox token; wait until gone."""
    marker = f"TOWER_SANDBOX={token}".encode()
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if marker not in fh.read().split(b"\0"):
                        continue
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                        continue  # a zombie is gone already; its parent reaps it
            except OSError:
                continue
            alive.append(int(entry))
        if not alive or time.monotonic() > deadline:
            return len(killed)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
