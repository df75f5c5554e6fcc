"""The sealed start of every harness process: its program arrives on a pipe, its only door
is the connection to the recorder it was started with.

The recorder starts a level as `python3 -I -S -c BOOT` (see `boot_command`) with the
program's bytes on stdin and a connection bound to that level's session on the file
descriptor named by `TOWER_RECORDER_FD`. `main` reads the program, applies the resource
limits, installs an audit hook and runs the program as `__main__`; the program never has a
file of its own to read.

The audit hook (PEP 578) is the runtime audit: opening a file for writing, reading
anything but the interpreter's own library and the op library, listing directories,
starting processes or threads, opening sockets, signalling, loading native code - each
is refused (the call raises `PermissionError`) and reported to the recorder, which ends
the evaluation as invalid with what was tried. Under `bwrap` isolation the kernel already
hides the work tree and every writable place; the hook adds the report. Under `process`
isolation the hook is what stands between a harness and the files (an in-process hook can
be outwitted by native code, which is why loading any is refused; the README says what
`process` does not guarantee).

Standard library only; imported by every harness at start-up.
"""
from __future__ import annotations

import builtins
import os
import sys
from typing import Any

LIMITS_ENV = "TOWER_LIMITS"      # "cpu_seconds,memory_bytes,file_bytes,processes"
SELF_ENV = "TOWER_SELF"          # the file name the program was recorded as (h1.py)
DENIED_EVENTS = frozenset({
    "os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.startfile",
    "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
    "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function", "ctypes.addressof",
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod", "os.chown",
    "os.chflags", "os.lchflags", "os.lchmod", "os.utime", "os.truncate", "os.listdir", "os.scandir",
    "os.listxattr", "os.setxattr", "os.removexattr", "os.chdir", "os.putenv", "os.unsetenv",
    "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.move",
    "shutil.rmtree", "shutil.chown", "shutil.make_archive", "shutil.unpack_archive",
    "_thread.start_new_thread", "mmap.__new__", "sys.setprofile", "sys.settrace", "sys.remote_exec",
    "sqlite3.connect", "webbrowser.open", "urllib.Request", "http.client.connect", "ftplib.connect",
    "smtplib.connect", "telnetlib.Telnet.open", "imaplib.open", "poplib.connect", "nntplib.connect",
})
DENIED_MODULES = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "subprocess", "mmap", "pty",
                            "multiprocessing", "_multiprocessing", "_xxsubinterpreters", "resource"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class _Hook:
    """The audit hook: refuse and report whatever a harness that sees only its terminal never needs."""

    def __init__(self, report: Any, own: str, readable: tuple[str, ...]) -> None:
        self.report, self.own, self.readable = report, own, readable
        self.busy = False

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.busy:
            return  # the report itself (a send on the recorder connection)
        what = self.verdict(event, args)
        if what is None:
            return
        kind, detail = what
        self.busy = True
        try:
            self.report(kind, detail)
        except Exception:
            pass  # the refusal below stands even when the report cannot be sent
        finally:
            self.busy = False
        raise PermissionError(f"sandbox: {detail} refused (harnesses see only their terminal)")

    def verdict(self, event: str, args: tuple[Any, ...]) -> tuple[str, str] | None:
        if event == "open":
            return self._open(args)
        if event == "import":
            module = str(args[0])
            if module.split(".")[0] in DENIED_MODULES:
                return "refused", f"import {module}"
            return None
        if event in DENIED_EVENTS:
            shown = ", ".join(repr(a)[:80] for a in args[:2])
            return "refused", f"{event}({shown})"
        return None

    def _open(self, args: tuple[Any, ...]) -> tuple[str, str] | None:
        path, mode, flags = (list(args) + [None, None, None])[:3]
        if isinstance(path, int):
            return None  # an already open descriptor: the pipes and the recorder connection only
        try:
            name = os.fsdecode(path)
        except TypeError:
            return "refused", f"open({path!r})"
        full = os.path.normpath(os.path.join(os.getcwd(), name))
        base = os.path.basename(full)
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
        if (self.own and base == self.own) or full.startswith(("/proc/self/", f"/proc/{os.getpid()}/")):
            return "self_read", f"open({name!r}) of its own source"
        if writes:
            return "refused", f"open({name!r}, {mode or flags!r}) for writing"
        if full in ("/dev/null", "/dev/urandom") or full.startswith(self.readable):
            return None
        return "refused", f"open({name!r})"


def _readable() -> tuple[str, ...]:
    """Directories a harness may read: the interpreter's library and the op library."""
    roots = {os.path.dirname(os.__file__), os.path.dirname(os.path.abspath(__file__))}
    roots.update(p for p in sys.path if p and "lib-dynload" in p)
    return tuple(sorted(os.path.normpath(r) + os.sep for r in roots))


def _limits() -> None:
    import resource  # before the hook: `resource` itself is refused to the program
    raw = os.environ.get(LIMITS_ENV, "")
    if not raw:
        return
    cpu, memory, size, procs = (int(x) for x in raw.split(","))
    for which, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, memory),
                         (resource.RLIMIT_FSIZE, size), (resource.RLIMIT_NPROC, procs)):
        if value > 0:
            resource.setrlimit(which, (value, value))


def main() -> None:
    """Run the program given on stdin as `__main__`, behind the audit hook."""
    program = sys.stdin.buffer.read()
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    _limits()
    from harness_tower import ft  # opens the recorder connection before sockets are refused
    conn = ft.connection()
    own = os.environ.get(SELF_ENV, "")
    hook = _Hook(lambda kind, detail: conn.call({"op": "audit", "kind": kind, "detail": detail}, 10.0), own, _readable())
    code = compile(program, f"<{own or 'harness'}>", "exec")
    del program
    module = type(sys)("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    sys.argv = [""]
    sys.orig_argv = [""]  # type: ignore[misc]
    sys.addaudithook(hook)
    exec(code, module.__dict__)


def boot_command(python: str, project_root: str) -> list[str]:
    """The argv that starts a sealed harness: an isolated interpreter that runs `main`."""
    boot = (f"import sys; sys.path.insert(0, {project_root!r}); "
            "from harness_tower.seal import main; main()")
    return [python, "-I", "-S", "-u", "-B", "-c", boot]
