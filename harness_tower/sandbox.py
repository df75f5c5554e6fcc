"""The sandbox: one evaluation's sealed terminal world.

A private tmux server whose panes run `bash` in the work tree; the recorder (the only
writer of the trajectory) behind a gateway that starts every harness level sealed; a
user id of its own; resource limits, a timeout, and a teardown that leaves no process and
no file of that user behind.

Two isolation levels (`resolve_isolation`; `auto` takes `bwrap` wherever it works):

- `bwrap`: panes run in namespaces (no network, a read-only system, a private size-capped
  /tmp, only the work tree writable); a harness interpreter runs with no view of the work
  tree or of any writable place (a read-only root holding the interpreter and the op
  library), its program on a pipe, its only door the recorder connection.
- `process`: the same user separation and the same sealed start, but no namespaces: what
  a harness could reach is guarded by the runtime audit hook (`seal`) and caught after the
  fact by the validators (`untyped_chars`, `tamper`). The kernel does not enforce it.

>>> # with Sandbox(Path("out")) as box:           # doctest: +SKIP
>>> #     box.write_top(2, source); outcome = box.run_top(2, source, timeout=60)
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness_tower
from harness_tower import proc
from harness_tower.errors import TowerError
from harness_tower.gateway import Gateway, GatewayCaps, Relay
from harness_tower.recorder import Recorder
from harness_tower.seal import LIMITS_ENV, boot_command
from harness_tower.worktree import TreeCaps

PROJECT_ROOT = str(Path(harness_tower.__file__).resolve().parent.parent)
OP_LIBRARY = str(Path(harness_tower.__file__).resolve().parent)
PYTHON = os.path.realpath(sys.executable)
TMPFS_BYTES = 64 << 20  # a pane's private /tmp and /dev/shm (bwrap)
UID_DIR = Path("/run/harness-evolve/uids")  # claimed sandbox user ids (root only)
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock")


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits for harnesses and every pane shell."""

    cpu_seconds: int = 600
    memory_bytes: int = 2 << 30
    file_bytes: int = 64 << 20
    processes: int = 256


@dataclass(frozen=True)
class Outcome:
    """How the top level ended: its exit status (None when killed), whether it timed out."""

    returncode: int | None
    timed_out: bool
    wall_seconds: float
    stderr_tail: str


LAUNCHER = """#!/bin/sh
# python3 in a writer pane: runs a recorded file as the level below, sealed (harness_tower.launch)
exec {python} -I -S -c 'import sys; sys.path.insert(0, "{root}"); from harness_tower.launch import main; main()' "$@"
"""
INTERPRETER = """#!/bin/sh
# python3 in the task's terminal: the interpreter, as for any command typed there
exec {python} "$@"
"""


def _usable_by_all(path: str) -> bool:
    """Whether any user may run `path` (every directory on the way traversable by others)."""
    try:
        if not os.stat(path).st_mode & 0o001:
            return False
        return all(os.stat(p).st_mode & 0o001 for p in map(str, Path(path).parents))
    except OSError:
        return False


def user_python() -> str:
    """The interpreter a sandbox user runs: ours where others may run it, else the system's."""
    for candidate in (PYTHON, "/usr/bin/python3", "/usr/local/bin/python3"):
        if _usable_by_all(candidate):
            return candidate
    return PYTHON


class Sandbox:
    """One evaluation's isolated terminal world; use as a context manager."""

    def __init__(self, out_dir: Path, *, width: int = 100, height: int = 30, limits: Limits = Limits(),
                 isolation: str = "auto", relay: Relay | None = None, tree_caps: TreeCaps | None = None,
                 gateway_caps: GatewayCaps | None = None) -> None:
        self.out_dir = Path(out_dir).absolute()
        self.work = self.out_dir / "tmux_outputs"  # where the finished trajectory ends up
        self.width, self.height, self.limits = width, height, limits
        self.isolation = resolve_isolation(isolation)
        self.relay = relay
        self.tree_caps = tree_caps or TreeCaps()
        self.gateway_caps = gateway_caps or GatewayCaps()
        self.token = uuid.uuid4().hex
        # Short paths (tmux socket paths must stay < 108 bytes); TOWER_TMPDIR moves them (e.g. a soak).
        self.tmp = Path(tempfile.mkdtemp(prefix="hes-", dir=os.environ.get("TOWER_TMPDIR", "/tmp")))
        self.socket = self.tmp / "tmux" / "tmux.sock"
        # While harnesses run, their work tree lives in the sandbox's own directory and the git
        # directory beside it, out of their reach; the finished history is checked out into `work`.
        self.live = self.tmp / "w" / "tmux_outputs"
        self.git_dir = self.tmp / "git"
        self.recorder_socket = self.tmp / "rec.sock"
        self.tmux = ["tmux", "-S", str(self.socket), "-f", "/dev/null"]
        self.drop_uid = os.geteuid() == 0  # harnesses never run as root
        self.uid = claim_uid() if self.drop_uid else os.geteuid()
        self.recorder: Recorder | None = None
        self.gateway: Gateway | None = None
        self.tasks = self.tmp / "t"  # task directories (outside the work tree)
        self.pane_cwd: dict[str, Path] = {}
        self.pane_banner: dict[str, str] = {}
        self.log = self.out_dir / "harness.log"
        self._log_lock = threading.Lock()
        self._log_bytes = 0

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
        """The environment of the tmux server and its panes (a pane adds its own PATH)."""
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.tmp / "home"),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "TERM": "tmux-256color",
            "HISTFILE": "/dev/null", "PS1": "$ ", "PS2": "> ", "PYTHONDONTWRITEBYTECODE": "1",
            "TOWER_SANDBOX": self.token,
        }

    def harness_env(self) -> dict[str, str]:
        """The environment of a sealed harness: nothing that names a place it could go."""
        lim = self.limits
        procs = lim.processes if self.drop_uid else 0  # counted per user: meaningful for our own user only
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
                "HOME": "/nonexistent", "TOWER_SANDBOX": self.token,
                LIMITS_ENV: f"{lim.cpu_seconds},{lim.memory_bytes},{lim.file_bytes},{procs}"}

    def _as_user(self) -> list[str]:
        if not self.drop_uid:
            return []
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all"]

    def seal(self) -> list[str]:
        """The argv of a sealed harness interpreter (its program comes on stdin).

        Under `bwrap` its root holds the system's programs and libraries, the interpreter
        and the op library, all read-only, and nothing else: no work tree, no /tmp, no
        writable place at all.
        """
        if self.isolation != "bwrap":
            return self._as_user() + boot_command(user_python(), PROJECT_ROOT)
        prefix = ["bwrap", "--die-with-parent", "--new-session", *NAMESPACES,
                  *_system_view(etc=False), *_keep_visible({_prefix_of(PYTHON), OP_LIBRARY}),
                  "--dev", "/dev", "--proc", "/proc", "--remount-ro", "/", "--chdir", "/"]
        return prefix + self._as_user() + boot_command(PYTHON, PROJECT_ROOT)  # bound where it is

    def _confine(self, argv: list[str], *, cwd: Path, binds: list[tuple[str, Path]], interactive: bool) -> list[str]:
        """`argv` as the sandbox user, inside this sandbox's isolation level, started in `cwd`.

        Under `bwrap` it sees the system's programs (/usr, /etc) read-only, the op library (for
        the launcher), a private size-capped /tmp and /dev/shm, its home and `binds` (the work
        tree, a task's directory, ...); not the host's other files (run directories, other
        trajectories, task suites). A command that is not a pane shell loses the terminal.
        """
        if self.isolation != "bwrap":
            return self._as_user() + argv
        home = str(self.tmp / "home")
        prefix = ["bwrap", "--die-with-parent", *NAMESPACES, *_system_view(etc=True),
                  "--dev", "/dev", "--proc", "/proc",
                  "--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp",
                  "--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm",
                  *_keep_visible({_prefix_of(user_python()), OP_LIBRARY})]
        for _, target in binds:  # the way down to each must be traversable (bwrap makes 0700)
            prefix += _parents(target)
        for how, target in binds:
            prefix += [how, str(target), str(target)]
        prefix += ["--perms", "0777", "--dir", home, "--chdir", str(cwd)]
        if not interactive:
            prefix.append("--new-session")
        return prefix + self._as_user() + argv

    def _pane(self, session: str) -> list[str]:
        """The argv of a pane's shell: writers run levels (`python3` is the launcher) in the work
        tree; the task's terminal runs the interpreter itself, in its task's directory if it has one."""
        writer = session != "h1_writer"
        bin_dir = self.tmp / ("bin" if writer else "pybin")
        env = ["env", "-u", "TMUX", "-u", "TMUX_PANE", "PS1=$ ", "PS2=> ",
               f"PATH={bin_dir}:/usr/local/bin:/usr/bin:/bin"]
        binds: list[tuple[str, Path]] = [("--bind", self.live), ("--ro-bind", bin_dir)]
        if writer:
            env.append(f"TOWER_RECORDER={self.recorder_socket}")
            binds.append(("--bind", self.recorder_socket))
        else:
            binds.append(("--bind", self.tasks))
        cwd = self.pane_cwd.get(session, self.live)
        return self._confine(env + ["bash", "--norc", "--noprofile", "+H"], cwd=cwd, binds=binds, interactive=True)

    def _shell(self, session: str) -> str:
        lim = self.limits
        nproc = f"-u {lim.processes} " if self.drop_uid else ""
        banner = self.pane_banner.get(session)
        shown = f"printf '%s\\n' {shlex.quote(banner)}; " if banner else ""
        cwd = shlex.quote(str(self.pane_cwd.get(session, self.live)))
        return (f"ulimit -S -t {lim.cpu_seconds} -v {lim.memory_bytes // 1024} -f {lim.file_bytes // 1024} "
                f"{nproc}2>/dev/null; {shown}cd {cwd} && exec {shlex.join(self._pane(session))}")

    # --- task directories -------------------------------------------------------------
    def task_dir(self, name: str) -> Path:
        """A fresh directory for one task, the sandbox user's, outside the work tree."""
        if not name or "/" in name or name in (".", ".."):
            raise TowerError(f"invalid task directory name {name!r}")
        path = self.tasks / name
        path.mkdir(mode=0o755)
        if self.drop_uid:
            os.chown(path, self.uid, self.uid)
        return path

    def open_task_terminal(self, session: str, cwd: Path, banner: str | None = None) -> None:
        """Give `session` a new pane started in `cwd` (its old pane and everything running in it
        ends), showing `banner` above the first prompt; its key sequence goes on."""
        assert self.recorder is not None
        self.pane_cwd[session], self.pane_banner[session] = cwd, banner or ""
        self.recorder.renew(session)

    def run_confined(self, command: str, cwd: Path, *, stdin: bytes = b"", timeout: float = 30.0,
                     env: dict[str, str] | None = None) -> tuple[int | None, str]:
        """Run a shell command as the sandbox user in `cwd` (a task's set-up or check): its exit
        status (None on timeout) and the tail of its output. Nothing it does is recorded."""
        lim = self.limits
        binds: list[tuple[str, Path]] = [("--bind", cwd)]
        argv = self._confine(["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
                              "TZ=UTC", f"HOME={self.tmp / 'home'}", f"TOWER_SANDBOX={self.token}",
                              *[f"{k}={v}" for k, v in (env or {}).items()],
                              "prlimit", f"--cpu={lim.cpu_seconds}", f"--as={lim.memory_bytes}",
                              f"--fsize={lim.file_bytes}", "bash", "--norc", "--noprofile", "-c", command],
                             cwd=cwd, binds=binds, interactive=False)
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            # Its own process group only (bwrap takes what runs inside it along): the panes and
            # harnesses of the evaluation keep running; anything that left the group is ended
            # with the sandbox at teardown.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return None, out[-4000:].decode("utf-8", "replace")
        return proc.returncode, out[-4000:].decode("utf-8", "replace")

    def _start(self) -> None:
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise TowerError(f"{self.out_dir}: output directory is not empty")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # Only this sandbox's user (by its group) may enter: another sandbox cannot reach its
        # sockets or its work tree even under `process` isolation.
        os.chmod(self.tmp, 0o710)
        for sub, mode in (("home", 0o700), ("bin", 0o755), ("pybin", 0o755), ("tmux", 0o700), ("w", 0o755),
                          ("t", 0o755)):
            (self.tmp / sub).mkdir(mode=mode)
            os.chmod(self.tmp / sub, mode)
        self.live.mkdir()
        if self.drop_uid:
            os.chown(self.tmp, 0, self.uid)
            os.chown(self.tmp / "home", self.uid, self.uid)
            # Root's, writable by the sandbox's group, sticky: harnesses make and remove their own
            # files but cannot rename, replace or remove the evaluator's (the top level's file).
            os.chown(self.live, 0, self.uid)
            os.chmod(self.live, 0o1770)
        python = shlex.quote(user_python())
        for sub, script in (("bin", LAUNCHER.format(python=python, root=PROJECT_ROOT)),
                            ("pybin", INTERPRETER.format(python=python))):
            (self.tmp / sub / "python3").write_text(script)
            os.chmod(self.tmp / sub / "python3", 0o755)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.git_dir)], check=True)
        os.chmod(self.git_dir, 0o700)  # the history is the recorder's alone
        env = self.env()
        # The server holds a placeholder session so that it outlives the writers' sessions.
        subprocess.run([*self.tmux, "new-session", "-d", "-s", "_tower", "-x", str(self.width),
                        "-y", str(self.height), "exec sleep 2147483647", ";",
                        "set-option", "-g", "history-limit", "2000", ";",
                        "set-option", "-g", "status", "off"],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.recorder = Recorder(self.tmux, env, self.live, self.git_dir, self._shell, self.width, self.height,
                                 self.tree_caps)
        self.gateway = Gateway(self.recorder, seal=self.seal, env=self.harness_env(),
                               launcher_socket=self.recorder_socket, relay=self.relay, caps=self.gateway_caps,
                               socket_owner=(0, self.uid) if self.drop_uid else None)
        self.recorder.on_fatal = self.gateway.fail

    def write_top(self, level: int, source: str) -> None:
        """Place the top level's file (the evaluator's; read-only to harnesses) in the work tree."""
        path = self.live / f"h{level}.py"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(source)

    def connect(self, session: str) -> socket.socket:
        """A recorder connection bound to `session`, for a trusted in-process client."""
        assert self.gateway is not None
        return self.gateway.connect(session)

    # --- running ----------------------------------------------------------------------
    def run_top(self, level: int, source: str, timeout: float) -> Outcome:
        """Run the top level sealed, bound to `h{level}_writer`; kill everything on timeout."""
        assert self.gateway is not None
        start = time.monotonic()
        harness = self.gateway.start(source.encode("utf-8"), f"h{level}_writer", f"h{level}.py", self._to_log)
        code = self.gateway.wait(harness, timeout)
        timed_out = code is None and self.gateway.fatal is None
        if code is None:
            harness.kill()
            harness.exited.wait(10.0)
        wall = time.monotonic() - start
        try:
            tail = self.log.read_bytes()[-4000:].decode("utf-8", errors="replace").strip().splitlines()
        except OSError:
            tail = []
        return Outcome(code, timed_out, wall, tail[-1] if tail else "")

    def _to_log(self, data: bytes) -> None:
        with self._log_lock, open(self.log, "ab") as log:
            log.write(data)

    # --- teardown ---------------------------------------------------------------------
    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Stop every process, then write the closing commit and deliver the trajectory.

        Returns the result as committed (`failed` if the work tree could not be recorded)."""
        self._stop_processes()
        if not self.recorder:
            return result
        recorder, self.recorder = self.recorder, None
        return recorder.finish(result, self.work)

    def teardown(self) -> None:
        self._stop_processes()
        if self.recorder:  # never finished: no history is delivered, nothing looks complete
            self.recorder.abort()
            self.recorder = None
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.drop_uid:
            release_uid(self.uid)

    def _stop_processes(self) -> None:
        if self.gateway:
            self.gateway.close()
        subprocess.run([*self.tmux, "kill-server"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.recorder:
            self.recorder.close_clients()
        if self.drop_uid:
            kill_user(self.uid)
            if self.isolation == "process":  # bwrap gives each pane a private /tmp and /dev/shm
                remove_user_files(self.uid)
        sweep(self.token)


# --------------------------------------------------------------------------------------
# Sandbox users: one user id per live sandbox, so that its processes and files can be
# found and ended whatever they did to hide (a new session, a cleared environment).
# --------------------------------------------------------------------------------------
SANDBOX_UIDS = range(200_000, 1_000_000)


def claim_uid() -> int:
    """A user id no other live sandbox on this machine holds (claimed by a file under /run)."""
    try:
        UID_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return SANDBOX_UIDS[secrets.randbelow(len(SANDBOX_UIDS))]
    for _ in range(100):
        uid = SANDBOX_UIDS[secrets.randbelow(len(SANDBOX_UIDS))]
        try:
            os.close(os.open(UID_DIR / str(uid), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        except OSError:
            return uid
        if not _user_processes(uid):
            return uid
    raise TowerError("no free sandbox user id")


def release_uid(uid: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(UID_DIR / str(uid))


def _user_processes(uid: int) -> list[int]:
    """Live (not zombie) processes with `uid` as any of their user ids."""
    found = []
    wanted = str(uid)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as fh:
                status = fh.read().decode("ascii", "replace")
        except OSError:
            continue
        uids = gone = None
        for line in status.splitlines():
            if line.startswith("Uid:"):
                uids = line.split()[1:]
            elif line.startswith("State:"):
                gone = line.split()[1] in ("Z", "X")
        if uids and wanted in uids and not gone:
            found.append(int(entry))
    return found


def kill_user(uid: int, timeout: float = 10.0) -> int:
    """SIGKILL every process of `uid` until none is left (a fork bomb is ended by repetition)."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        alive = _user_processes(uid)
        if not alive or time.monotonic() > deadline:
            return len(killed)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.005)


def remove_user_files(uid: int) -> None:
    """Remove what `uid` left in the machine's world-writable directories (`process` isolation).

    A sandbox user can create files only in directories anyone may write to (or in its own,
    removed whole), so the search descends only into world-writable directories.
    """
    pending = [top for top in WORLD_WRITABLE if os.path.isdir(top) and not os.path.islink(top)]
    while pending:
        for entry in _entries(pending.pop()):
            try:
                st = os.lstat(entry)
            except OSError:
                continue
            if st.st_uid == uid:
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry)
            elif stat.S_ISDIR(st.st_mode) and st.st_mode & 0o002:
                pending.append(entry)


def _entries(top: str) -> Iterator[str]:
    try:
        names = os.listdir(top)
    except OSError:
        return
    for name in names:
        yield os.path.join(top, name)


_ISOLATION_PROBE: dict[str, bool] = {}


NAMESPACES = ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
              "--hostname", "tower")


def _system_view(*, etc: bool) -> list[str]:
    """bwrap arguments for a read-only view of the system's programs and libraries."""
    out = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib64", "sbin"):
        path = f"/{top}"
        if os.path.islink(path):  # a merged /usr: the same links in the sandbox
            out += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            out += ["--ro-bind", path, path]
    out += ["--ro-bind", "/etc", "/etc"] if etc else ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return out


def _parents(target: Path) -> list[str]:
    """bwrap arguments making the directories above `target` traversable (0755)."""
    out: list[str] = []
    for parent in reversed(target.parents):
        if str(parent) != "/" and not (str(parent) + "/").startswith(("/usr/", "/etc/", "/dev/", "/proc/")):
            out += ["--perms", "0755", "--dir", str(parent)]
    return out


def _keep_visible(paths: set[str]) -> list[str]:
    """bwrap arguments binding `paths` read-only where they are (those outside /usr)."""
    out: list[str] = []
    for path in sorted(p for p in paths if not (p + "/").startswith("/usr/")):
        out += [*_parents(Path(path)), "--ro-bind", path, path]
    return out


def _prefix_of(python: str) -> str:
    """The installation an interpreter runs from (`/usr` for `/usr/bin/python3`)."""
    return sys.base_prefix if python == PYTHON else os.path.dirname(os.path.dirname(python))


def bwrap_works() -> bool:
    """bubblewrap is installed and can create the namespaces we use on this machine."""
    if "bwrap" not in _ISOLATION_PROBE:
        ok = False
        if shutil.which("bwrap"):
            probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                                    "--unshare-net", "--unshare-pid", "--die-with-parent",
                                    "--size", "1048576", "--tmpfs", "/tmp", "true"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ok = probe.returncode == 0
        _ISOLATION_PROBE["bwrap"] = ok
    return _ISOLATION_PROBE["bwrap"]


def isolation_notice(isolation: str = "auto") -> str:
    """One line for a run's start: the isolation towers get here, and what it does not guarantee."""
    level = resolve_isolation(isolation)
    if level == "bwrap":
        line = "sandboxes: bwrap (harnesses see only their terminal; the kernel enforces it)"
    else:
        why = "as configured" if isolation == "process" else "bubblewrap is not usable here"
        line = (f"sandboxes: process ({why}) - the kernel does not keep harnesses from the work tree or "
                "panes from the network: a runtime audit refuses what it sees and the validators "
                "(untyped_chars, tamper) catch the rest after the fact")
    if os.geteuid() != 0:
        line += ("; not root: sandboxes share this user, so a process that detaches and clears its "
                 "environment can outlive its evaluation")
    return line + "; each evaluation stores its isolation"


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
    """SIGKILL every process whose environment carries the sandbox token; wait until gone.

    The fallback where sandboxes cannot have users of their own (not started as root): a
    process that clears its environment escapes it, which the README says.
    """
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
                if not proc.live(proc.stat(int(entry))):
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
