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
from collections.abc import Callable
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
    "sqlite3.connect", "webbrowser.open", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "function.__new__", "code.__new__", "urllib.Request", "http.client.connect", "ftplib.connect",
    "smtplib.connect", "telnetlib.Telnet.open", "imaplib.open", "poplib.connect", "nntplib.connect",
})
DENIED_MODULES = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "subprocess", "mmap", "pty",
                            "multiprocessing", "_multiprocessing", "_xxsubinterpreters", "resource"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def make_hook(report: Callable[[str, str], object], own: str,
              readable: tuple[str, ...]) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook: refuse and report what a harness that sees only its terminal never needs.

    Everything it uses is bound here, in its closure: a harness may rebind module attributes
    (`os.path.normpath`, `builtins.isinstance`, this module's tables) but cannot reach the
    closure: once installed, nothing but the interpreter refers to the hook (`main` drops its
    name before the program runs) and the garbage collector's views of objects are refused.
    """
    denied_events, denied_modules, write_flags = DENIED_EVENTS, DENIED_MODULES, _WRITE_FLAGS
    getcwd, normpath, join, basename, fsdecode, getpid = (os.getcwd, os.path.normpath, os.path.join,
                                                         os.path.basename, os.fsdecode, os.getpid)
    is_a, text, show, refusal = isinstance, str, repr, PermissionError
    busy = [False]

    def verdict(event: str, args: tuple[Any, ...]) -> tuple[str, str] | None:
        if event == "open":
            path, mode, flags = (args + (None, None, None))[:3]
            if is_a(path, int):
                return None  # an already open descriptor: the pipes and the recorder connection only
            try:
                name = fsdecode(path)
            except TypeError:
                return "refused", "open of a path that is not a name"
            full = normpath(join(getcwd(), name))
            writes = (is_a(mode, str) and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or (
                is_a(flags, int) and (flags & write_flags) != 0)
            if (own and basename(full) == own) or full.startswith("/proc/self/") or \
                    full.startswith("/proc/" + text(getpid()) + "/"):
                return "self_read", "open(" + show(name) + ") of its own source"
            if writes:
                return "refused", "open(" + show(name) + ") for writing"
            if full in ("/dev/null", "/dev/urandom") or full.startswith(readable):
                return None
            if name.startswith("<") and name.endswith(">") and "/" not in name:
                return None  # a pseudo file name (`<unknown>`): a SyntaxError looking for its source line
            return "refused", "open(" + show(name) + ")"
        if event == "os.listdir" or event == "os.scandir":  # the import system lists package directories
            where = args[0] if args else None
            if is_a(where, (str, bytes)) and (normpath(join(getcwd(), fsdecode(where))) + "/").startswith(readable):
                return None
            return "refused", event + "(" + show(where)[:80] + ")"
        if event == "import":
            module = text(args[0])
            return ("refused", "import " + module) if module.split(".")[0] in denied_modules else None
        if event in denied_events:
            return "refused", event + "(" + ", ".join(show(a)[:80] for a in args[:2]) + ")"
        return None

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if busy[0]:
            return  # the report itself (a send on the recorder connection)
        found = verdict(event, args)
        if found is None:
            return
        busy[0] = True
        try:
            report(found[0], found[1])
        except Exception:  # noqa: BLE001, S110 - the refusal below stands even when no report gets out
            pass
        finally:
            busy[0] = False
        raise refusal("sandbox: " + found[1] + " refused (harnesses see only their terminal)")

    return hook


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
    hook = make_hook(lambda kind, detail: conn.call({"op": "audit", "kind": kind, "detail": detail}, 10.0),
                     own, _readable())
    code = compile(program, f"<{own or 'harness'}>", "exec")
    del program
    module = type(sys)("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    sys.argv = [""]
    sys.orig_argv = [""]  # type: ignore[misc]
    sys.addaudithook(hook)
    del hook  # from here on only the interpreter holds it: no frame of ours leads to it
    exec(code, module.__dict__)


def boot_command(python: str, project_root: str) -> list[str]:
    """The argv that starts a sealed harness: an isolated interpreter that runs `main`."""
    boot = (f"import sys; sys.path.insert(0, {project_root!r}); "
            "from harness_tower.seal import main; main()")
    return [python, "-I", "-S", "-u", "-B", "-c", boot]
