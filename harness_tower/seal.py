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


def make_hook(send: Callable[[bytes], object], own: str,
              readable: tuple[str, ...]) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook: refuse and report what a harness that sees only its terminal never needs.

    A harness may rebind anything reachable from Python (`os.fspath`, `posixpath.normpath`,
    `builtins.isinstance`, `json.dumps`, the op library's classes), so the hook uses only
    what it bound when it was made: built-in functions and methods of built-in types, which
    cannot be changed, and `send` (the bound `sendall` of the recorder connection's socket).
    It reaches no Python-level library code, paths are normalised here by string operations,
    and any path that is not a plain `str` or `bytes` is refused (a path-like object could
    name one file to the hook and another to `open`). Once installed, nothing but the
    interpreter refers to the hook (`main` drops its name) and the garbage collector's views
    of objects are refused, so its closure cannot be reached either.
    """
    denied_events, denied_modules, write_flags = DENIED_EVENTS, DENIED_MODULES, _WRITE_FLAGS
    getcwd, getpid, kind_of, refusal = os.getcwd, os.getpid, type, PermissionError
    as_text, quote, split, join_parts = bytes.decode, str.__repr__, str.split, "/".join
    starts, ends = str.startswith, str.endswith
    # A class's name read through `type`'s own descriptor: a metaclass can override `__name__`
    # with a property, and `cls.__name__` would then run harness code inside the hook.
    name_of = type.__dict__["__name__"].__get__
    write, stop = os.write, os._exit
    controls = {c: "?" for c in (*range(32), 127)}
    busy = [False]

    def shown(value: object) -> str:
        if kind_of(value) is str:
            return quote(value)[:80]  # type: ignore[arg-type]
        if kind_of(value) is int:
            return int.__repr__(value)  # type: ignore[arg-type]
        return "<" + name_of(kind_of(value)) + ">"

    def as_name(value: object) -> str:
        return as_text(value, "utf-8", "surrogateescape") if kind_of(value) is bytes else value  # type: ignore

    def pseudo(value: object) -> bool:
        return kind_of(value) is str and starts(value, "<") and ends(value, ">") and "/" not in value  # type: ignore

    def absolute(value: object) -> str | None:
        """The normalised absolute path `value` names, or None if it is no plain name."""
        if kind_of(value) is bytes:
            value = as_text(value, "utf-8", "surrogateescape")  # type: ignore[arg-type]
        if kind_of(value) is not str:
            return None
        name: str = value  # type: ignore[assignment]
        if not starts(name, "/"):
            name = getcwd() + "/" + name
        parts: list[str] = []
        for part in split(name, "/"):
            if part == "" or part == ".":
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return "/" + join_parts(parts)

    def verdict(event: str, args: tuple[Any, ...]) -> tuple[str, str] | None:
        if event == "open":
            path, mode, flags = (args + (None, None, None))[:3]
            if kind_of(path) is int:
                return None  # an already open descriptor: the pipes and the recorder connection only
            full = absolute(path)
            if full is None:
                return "refused", "open of a " + name_of(kind_of(path)) + " path"
            name = shown(path)
            writes = (kind_of(mode) is str and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or (
                kind_of(flags) is int and (flags & write_flags) != 0)
            if (own and split(full, "/")[-1] == own) or starts(full, "/proc/self/") or \
                    starts(full, "/proc/" + int.__repr__(getpid()) + "/") or starts(full, "/proc/thread-self/"):
                return "self_read", "open(" + name + ") of its own source"
            if writes:
                return "refused", "open(" + name + ") for writing"
            if not starts(as_name(path), "/") and not pseudo(path):
                # the event does not say which directory (dir_fd) a relative name is resolved in
                return "refused", "open(" + name + ") by a relative name"
            if full == "/dev/null" or full == "/dev/urandom" or starts(full, readable):
                return None
            if pseudo(path):
                return None  # a pseudo file name (`<unknown>`): a SyntaxError looking for its source line
            return "refused", "open(" + name + ")"
        if event == "os.listdir" or event == "os.scandir":  # the import system lists package directories
            where = absolute(args[0] if args else None)
            if where is not None and starts(where + "/", readable):
                return None
            return "refused", event + "(" + shown(args[0] if args else None) + ")"
        if event == "import":
            module = args[0] if args else None
            if kind_of(module) is not str or split(module, ".")[0] in denied_modules:  # type: ignore[arg-type]
                return "refused", "import " + shown(module)
            return None
        if event in denied_events:
            return "refused", event + "(" + ", ".join([shown(a) for a in args[:2]]) + ")"
        return None

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if busy[0]:
            return
        found = verdict(event, args)
        if found is None:
            return
        busy[0] = True
        try:  # one line, no reply: the gateway records it; JSON by hand (json.dumps could be rebound)
            detail = str.translate(str.replace(str.replace(found[1], "\\", "/"), '"', "'"), controls)
            send(('{"op": "audit", "kind": "' + found[0] + '", "detail": "' + detail + '"}\n').encode(
                "ascii", "replace"))
        except Exception:  # noqa: BLE001 - no report got out: the connection was tampered with (a
            # descriptor swapped over it) or is gone; a harness is never left running unreported
            try:
                write(2, b"sandbox: the runtime audit could not report a refusal; the level is stopped\n")
            finally:
                stop(125)
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
    hook = make_hook(conn.sock.sendall, own, _readable())
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
