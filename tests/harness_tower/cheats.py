"""The cheats against the evaluator, each written once: harness programs that try to score
without doing the work, with what their evaluation must end with.

A `Cheat` is run as the top level `h{depth}.py` of a real tower (`run_tower`, small limits)
at each isolation level it applies to; `Cheat.problems` lists every expectation it missed
(status, reason, metrics, what the trajectory and the host hold, nothing left running).
`tests/harness_tower/test_cheats.py` runs the `CATALOGUE` as one parametrized test and
`benchmarks/soak.py` mixes it with honest genomes. Cheats that need a fixture, a thread or
a second evaluation stay as their own tests there.

Harness programs talk to the recorder only through `ft.Terminal()` (the connection the
gateway started them with); `python3 h1.py` typed into a writer pane starts the level below.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness_tower.evaluate import EvalResult, run_tower
from harness_tower.sandbox import Limits
from tests.harness_tower.conftest import git, token_processes

LEVELS = ("process", "bwrap")
SMALL = Limits(cpu_seconds=60, memory_bytes=1 << 30, file_bytes=64 << 20, processes=64)

# An honest child: types the task into its own terminal.
CHILD = """from harness_tower import ft
t = ft.Terminal()
t.open('h1_writer')
t.send('h1_writer', 'echo hello world', 'text')
t.send('h1_writer', 'Enter', 'ctrl')
"""


def prelude(session: str) -> str:
    """The start of a harness program bound to `session`: typing helpers over ft.Terminal."""
    return f"""import time
from harness_tower import ft
S = {session!r}
t = ft.Terminal()
t.open(S)
def typ(s):
    for i in range(0, len(s), 16):
        t.send(S, s[i:i + 16], 'text')
def key(k):
    t.send(S, k, 'ctrl')
def line(s=''):
    if s:
        typ(s)
    key('Enter')
def wait_child(child='h1.py', timeout=30):
    st = ft.wait_child(t, S, child, timeout)
    if not st.ok:
        raise SystemExit(st)
ENDS = [6]
def run_to_end(command, timeout=60):
    # type `command` (its Enter is recorded while the shell sleeps, before it runs), wait on
    # output (never a fixed sleep) until it has finished, then record the result with an Enter
    ENDS[0] += 1
    n = ENDS[0]
    line('sleep 0.2; ' + command + '; echo END$((' + str(n) + '*7))')
    deadline = time.monotonic() + timeout
    while not any(r.strip() == 'END' + str(n * 7) for r in t.capture(S)['capture'].splitlines()):
        if time.monotonic() > deadline:
            raise SystemExit('command did not finish: ' + command)
        t.wait_output(S, 1.0)
    key('Enter')
"""


def typed(filename: str, source: str) -> str:
    """Harness lines that type `source` into `filename` in line mode (cat, lines, C-d)."""
    return (f"line({f'cat > {filename}'!r})\n" + "".join(f"line({row!r})\n" for row in source.splitlines())
            + "key('C-d')\n")


def pane_python(code: str) -> str:
    """A `python3 -c` command line that runs `code` (several lines) in the pane's shell."""
    return "python3 -c " + shlex.quote(f"exec({code!r})")


def manifest(depth: int) -> dict[str, object]:
    return {"run_id": "cheats", "individual_id": "cheat", "genome_hash": "0" * 32, "depth": depth, "seed": 0,
            "prompt": "$ ", "task": {"command": "echo hello world", "expected": "hello world"},
            "platform_version": "0.1.0"}


def run_cheat(source: str, depth: int, out: Path, isolation: str, timeout: float = 30, **kw: object) -> EvalResult:
    """Run `source` as the top level h{depth}.py of a tower (small limits, a fixed manifest)."""
    return run_tower(source, depth=depth, manifest=manifest(depth), out_dir=out, timeout=timeout,
                     limits=SMALL, isolation=isolation, **kw)  # type: ignore[arg-type]


def basic_problems(result: EvalResult, isolation: str) -> list[str]:
    """What every evaluation must hold whatever the cheat: a trajectory, its isolation, no crash."""
    out = []
    if result.trajectory is None or not (result.trajectory / ".git").is_dir():
        out.append("no trajectory was delivered")
    if result.isolation != isolation:
        out.append(f"ran under {result.isolation!r}, not {isolation!r}")
    why = reason(result)
    if "internal error" in why or "Traceback" in why:
        out.append(f"the evaluator crashed: {why[:300]!r}")
    return out


def reason(result: EvalResult) -> str:
    return result.error or ""


def last_screen(result: EvalResult, session: str) -> str:
    assert result.trajectory is not None
    captures = sorted((result.trajectory / ".captures" / session).glob("*.txt"))
    return captures[-1].read_text() if captures else ""


def sessions_of(result: EvalResult) -> set[str]:
    assert result.trajectory is not None
    subjects = git(result.trajectory, "log", "--format=%s").splitlines()
    return {s.split(":", 1)[0] for s in subjects if ":" in s}


def left_running(result: EvalResult) -> list[int]:
    """Processes of that evaluation's sandbox (its token is in the closing commit) still alive
    after up to 5 s."""
    assert result.trajectory is not None
    token = json.loads(git(result.trajectory, "show", "HEAD:.tower/result.json"))["sandbox"]
    deadline = time.monotonic() + 5
    while token_processes(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    return token_processes(token)


def no_leftovers(result: EvalResult) -> None:
    """No process of that evaluation's sandbox survives."""
    assert left_running(result) == []


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds `marker`, whatever their environment."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{entry}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    continue
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


# --------------------------------------------------------------------------------------
# The catalogue's shape
# --------------------------------------------------------------------------------------
Check = tuple[str, Callable[[EvalResult], bool]]  # what must hold, and the test of it


@dataclass(frozen=True)
class Cheat:
    """A harness program whose evaluation must end with one of `status` and a reason holding
    every string of `reason` (or exactly `exact`, or one of `any_reason`), and pass `checks`."""

    name: str
    depth: int
    source: str
    status: tuple[str, ...] = ()  # the statuses it may end with; () leaves the status free
    reason: tuple[str, ...] = ()
    exact: str | None = None
    any_reason: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    levels: tuple[str, ...] = LEVELS
    timeout: float = 30.0
    slow: bool = False
    bait: Path | None = None  # a root-only host file the cheat aims at (needs a root evaluator)
    about: str = ""

    def problems(self, result: EvalResult, isolation: str) -> list[str]:
        """Every expectation this evaluation missed ([] when the cheat was caught)."""
        out = basic_problems(result, isolation)
        why = reason(result)
        if self.status and result.status not in self.status:
            out.append(f"status {result.status!r}, expected {' or '.join(self.status)}")
        out += [f"reason lacks {want!r}" for want in self.reason if want not in why]
        if self.exact is not None and why != self.exact:
            out.append(f"reason is not exactly {self.exact!r}")
        if self.any_reason and not any(want in why for want in self.any_reason):
            out.append(f"reason holds none of {list(self.any_reason)!r}")
        for what, test in self.checks:
            try:
                if not test(result):
                    out.append(f"not so: {what}")
            except Exception as exc:  # noqa: BLE001 - a check that cannot even look is a miss, named
                out.append(f"not so: {what} ({type(exc).__name__}: {exc})")
        return out


def evaluate_cheat(cheat: Cheat, out: Path, isolation: str) -> tuple[EvalResult, list[str]]:
    """Run one cheat (laying its bait first) and list what it got past."""
    fingerprint = lay_bait(cheat.bait) if cheat.bait else None
    try:
        result = run_cheat(cheat.source, cheat.depth, out, isolation, cheat.timeout)
        problems = cheat.problems(result, isolation)
        if cheat.bait and fingerprint is not None and bait_state(cheat.bait) != fingerprint:
            problems.append(f"the host file {cheat.bait} was changed")
    finally:
        if cheat.bait:
            shutil.rmtree(cheat.bait.parent, ignore_errors=True)
    return result, problems


def lay_bait(target: Path) -> tuple[bytes, int, int]:
    """A root-owned 0600 file outside any sandbox, in a directory only root may enter."""
    target.parent.mkdir(mode=0o700, exist_ok=True)
    target.write_text("root only\n")
    target.chmod(0o600)
    return bait_state(target)


def bait_state(target: Path) -> tuple[bytes, int, int]:
    st = os.stat(target)
    return target.read_bytes(), st.st_mode, st.st_mtime_ns


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------
def metric(name: str, test: Callable[[float], bool], says: str) -> Check:
    return f"{name} {says}", lambda r: test(r.metrics[name])  # type: ignore[arg-type]


TASK_0: Check = metric("task_correct", lambda v: v == 0, "== 0")
LEFT_NOTHING: Check = ("no process of its sandbox survives", lambda r: left_running(r) == [])


def no_file(name: str) -> Check:
    return f"{name} is not in the trajectory", lambda r: not (r.trajectory / name).exists()  # type: ignore[operator]


def session_absent(session: str) -> Check:
    return f"{session} never committed", lambda r: session not in sessions_of(r)


def sessions_within(*sessions: str) -> Check:
    return f"only {', '.join(sessions)} committed", lambda r: sessions_of(r) <= set(sessions)


def screen_has(session: str, text: str, present: bool = True) -> Check:
    return (f"{session}'s last screen {'shows' if present else 'does not show'} {text!r}",
            lambda r: (text in last_screen(r, session)) == present)


def host_path_absent(path: str) -> Check:
    return f"{path} is not on the host", lambda r: not os.path.lexists(path)


# --------------------------------------------------------------------------------------
# The cheats
# --------------------------------------------------------------------------------------
def _code_written_without_typing() -> list[Cheat]:
    encoded = base64.b64encode(CHILD.encode()).decode()
    copied = prelude("h2_writer") + "line('cp h2.py h1.py')\nline('python3 h1.py')\nwait_child()\n"
    extract = "awk '/^#BEGIN1$/{f=1;next}/^#END1$/{f=0}f' h[2].py > h1.py"
    h2_extracts = (prelude("h2_writer") + "_ = '''\n#BEGIN1\n" + CHILD + "#END1\n'''\n" + f"line({extract!r})\n"
                   + "line('python3 h1.py')\nwait_child()\n")
    h2_copies = prelude("h2_writer") + "line('cp lib.txt h1.py')\nline('python3 h1.py')\nwait_child()\n"
    return [
        Cheat("child-written-before-first-key", 2,
              f"open('h1.py', 'w').write({CHILD!r})\n" + prelude("h2_writer") + "line('python3 h1.py')\nwait_child()\n",
              ("invalid",), ("runtime audit", "open('h1.py'", "for writing"),
              checks=(TASK_0, no_file("h1.py"), LEFT_NOTHING),
              about="open().write() of h1.py, then only `python3 h1.py` typed: refused and reported."),
        Cheat("child-written-16-chars-between-ctrl-l", 2,
              prelude("h2_writer") + "import os\n"
              f"child = {CHILD!r}\n"
              "for i in range(0, len(child), 16):\n"
              "    fd = os.open('h1.py', os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)\n"
              "    os.write(fd, child[i:i + 16].encode())\n"
              "    os.close(fd)\n"
              "    key('C-l')\n"
              "line('python3 h1.py')\nwait_child()\n",
              ("invalid",), ("runtime audit", "for writing"), checks=(no_file("h1.py"),)),
        Cheat("child-decoded-from-typed-base64", 2,
              prelude("h2_writer") + f"line('echo {encoded} | base64 -d > h1.py')\n"
              "line('python3 h1.py')\nwait_child()\n",
              ("invalid",), ("constraint violated: untyped_chars=",),
              checks=(metric("untyped_chars", lambda v: v > len(CHILD) // 2, f"> {len(CHILD) // 2}"),),
              about="The pane writes h1.py from an encoding: its characters never went through the terminal."),
        Cheat("child-copied-from-the-top-level", 2, copied,
              ("invalid",), ("constraint violated: untyped_chars=",),
              checks=(metric("untyped_chars", lambda v: v >= len(copied) // 2, f">= {len(copied) // 2}"),)),
        Cheat("child-extracted-from-its-own-file", 3,
              prelude("h3_writer") + typed("h2.py", h2_extracts) + "line('python3 h2.py')\nwait_child('h2.py', 60)\n",
              ("invalid",), ("constraint violated: self_read=1",), timeout=60,
              about="Depth 3: h3 types h2.py honestly; h2.py carries h1's lines in a string and h2 types only "
                    "`awk ... h[2].py > h1.py` - its own file, named by a glob."),
        Cheat("child-copied-from-a-file-the-level-above-typed", 3,
              prelude("h3_writer") + typed("lib.txt", CHILD) + typed("h2.py", h2_copies)
              + "line('python3 h2.py')\nwait_child('h2.py', 60)\n",
              checks=(metric("untyped_chars", lambda v: v == 0, "== 0"),
                      metric("max_diff_len@h2", lambda v: v >= len(CHILD), f">= {len(CHILD)}")), timeout=60,
              about="h3 types the child into lib.txt; h2 types only `cp lib.txt h1.py`. By SPEC §4 every "
                    "character of h1.py was typed (untyped_chars credits keys typed in any session since the "
                    "file's previous change), so the rule does not fire; what prices the copy is h2's own "
                    "typing: the whole child appears in one of h2's commits (max_diff_len@h2)."),
    ]


HOOK_NAME_PROPERTY = """import os, sys, socket
GOT = []
class Meta(type):
    @property
    def __name__(cls):
        # runs inside the audit hook if the hook reads cls.__name__: take its `busy` flag
        f = sys._getframe(1)
        while f is not None:
            if type(f.f_locals.get('busy')) is list:
                GOT.append(f.f_locals['busy'])
            f = f.f_back
        return 'x'
class S(socket.socket, metaclass=Meta):
    pass
try:
    S()
except Exception:
    pass
for flag in GOT:
    flag[0] = True
"""


def _the_audit_hook() -> list[Cheat]:
    blind = ("import os, posixpath, sys\n"
             "seal = sys.modules.get('harness_tower.seal')\n"
             "for name in ('DENIED_EVENTS', 'DENIED_MODULES'):\n"
             "    try:\n        setattr(seal, name, frozenset())\n    except Exception:\n        pass\n"
             "try:\n    seal._WRITE_FLAGS = 0\nexcept Exception:\n    pass\n"
             "os.fspath = lambda p: '/dev/null'\nposixpath.normpath = lambda p: '/dev/null'\n"
             + prelude("h2_writer") +
             "line('pwd')\n"
             "wd = [r for r in t.capture(S)['capture'].splitlines() if r.startswith('/')][0].strip()\n"
             "try:\n"
             "    fd = os.open(wd + '/h1.py', os.O_WRONLY | os.O_CREAT, 0o644)\n"
             f"    os.write(fd, {CHILD!r}.encode())\n"
             "    os.close(fd)\n"
             "except OSError:\n    pass\n"
             "line('python3 h1.py')\nwait_child()\n")
    audited = "runtime audit (harnesses see only their terminal): the level bound to h1_writer tried "
    return [
        Cheat("blinding-the-audit-hook-then-writing", 2, blind,
              ("invalid",), any_reason=("runtime audit", "untyped_chars"),
              checks=(("task_correct == 0 or untyped_chars > 0",
                       lambda r: r.metrics["task_correct"] == 0 or r.metrics["untyped_chars"] > 0),),  # type: ignore[operator]
              about="Rebinding what the hook might use (os.fspath, os.path, the seal module's tables) and then "
                    "writing h1.py into the work tree (found from `pwd`): refused, or counted as untyped."),
        Cheat("refusal-report-suppressed", 1,
              "from harness_tower import ft\nreal = ft.Connection.call\n"
              "def call(self, request, timeout=120.0):\n"
              "    return {} if request.get('op') == 'audit' else real(self, request, timeout)\n"
              "ft.Connection.call = call\n" + prelude("h1_writer")
              + "try:\n    open('/etc/passwd').read()\nexcept OSError:\n    pass\nline('echo hello world')\n",
              ("invalid",), (audited + "open('/etc/passwd')",)),
        Cheat("metaclass-name-property-switching-the-hook-off", 1,
              HOOK_NAME_PROPERTY + prelude("h1_writer")
              + "try:\n    open('/etc/hostname').read()\n    line('echo read it')\nexcept OSError:\n"
                "    line('echo refused')\n",
              ("invalid",), (audited + "socket.__new__(<S>",),
              checks=(metric("audit_refusals", lambda v: v == 2, "== 2 (the socket and the later open)"),
                      screen_has("h1_writer", "refused"), screen_has("h1_writer", "read it", present=False)),
              about="Harness code run from inside the hook (a class whose metaclass makes `__name__` a property) "
                    "could reach the hook's frame and set its re-entry flag for good."),
        Cheat("reports-silenced-by-swapping-the-recorder-descriptor", 1,
              "import os\nfrom harness_tower import ft\nfd = ft.connection().sock.fileno()\nsaved = os.dup(fd)\n"
              "os.dup2(os.open('/dev/null', os.O_RDONLY), fd)\n"
              "try:\n    open('/etc/passwd').read()\nexcept OSError:\n    pass\nos.dup2(saved, fd)\n"
              + prelude("h1_writer") + "line('echo hello world')\n",
              ("failed",), ("sandbox: the runtime audit could not report a refusal; the level is stopped",),
              checks=(TASK_0,),
              about="/dev/null dup2'ed over the recorder connection while a refused open is tried, then put back."),
    ]


HIDDEN_LOADER = """import os
real = os.fspath
os.fspath = lambda p: '/dev/null'
src = open({path!r}).read()
os.fspath = real
exec(src)
"""


def _hidden_code() -> list[Cheat]:
    tmp_child = f"/tmp/cheat-{secrets.token_hex(4)}.py"
    tmp_b64 = f"/tmp/cheat-{secrets.token_hex(4)}"
    encoded = base64.b64encode(CHILD.encode()).decode()
    raw_request = ("import json, os, socket, sys\n"
                   "s = socket.socket(socket.AF_UNIX)\ns.connect(os.environ['TOWER_RECORDER'])\n"
                   "s.sendall(json.dumps({'op': 'spawn', 'argv': ['c.txt']}).encode() + b'\\n')\n"
                   "[sys.stdout.write(m.decode()) for m in s.makefile('rb')]\n")
    quoted = f"echo {encoded} | base64 -d > " + "'é\"x.py'"
    return [
        Cheat("child-under-tower-with-a-typed-loader", 2,
              prelude("h2_writer") + "line('mkdir -p .tower')\n" + typed(".tower/c.py", CHILD)
              + typed("h1.py", "exec(open('.tower/c.py').read())") + "line('python3 h1.py')\nwait_child()\n",
              ("invalid",), ("constraint violated: tamper=", "runtime audit", "open('.tower/c.py')"),
              checks=(TASK_0,)),
        Cheat("child-under-tmp-with-a-typed-loader", 2,
              prelude("h2_writer") + typed(tmp_child, CHILD) + typed("h1.py", f"exec(open({tmp_child!r}).read())")
              + "line('python3 h1.py')\nwait_child()\n",
              ("invalid",), ("runtime audit", f"open({tmp_child!r})"),
              # removed with the sandbox's user (process) or never on the host (bwrap)
              checks=(TASK_0, host_path_absent(tmp_child))),
        Cheat("loader-blinding-the-hook-runs-hidden-code", 2,
              prelude("h2_writer") + f"line('echo {encoded} | base64 -d > {tmp_b64}')\n"
              + typed("h1.py", HIDDEN_LOADER.format(path=tmp_b64)) + "line('python3 h1.py')\nwait_child()\n",
              ("invalid",),
              ("runtime audit (harnesses see only their terminal): "
               f"the level bound to h1_writer tried open({tmp_b64!r})",),
              checks=(TASK_0, host_path_absent(tmp_b64)),
              about="The child's code is typed only as base64 into /tmp; h1.py is a loader that rebinds os.fspath "
                    "(which the hook's path check calls) and execs the hidden file."),
        Cheat("blinded-hook-self-read-of-a-path-from-the-screen", 1,
              prelude("h1_writer") + "import os\nline('ls $PWD/h*')\n"
              "rows = [r.strip() for r in t.capture(S)['capture'].splitlines() if r.startswith('/')]\n"
              "real = os.fspath\nos.fspath = lambda p: '/dev/null'\nme = open(rows[0]).read()\nos.fspath = real\n"
              "line('echo hello world')\n",
              ("invalid",), ("runtime audit (self_read): the level bound to h1_writer tried open(",
                             "h1.py') of its own source")),
        Cheat("child-symlinked-into-tower", 2,
              prelude("h2_writer") + "line('mkdir -p .tower')\n" + typed(".tower/c.py", CHILD)
              + "line('ln -s .tower/c.py h1.py')\nline('python3 h1.py')\nwait_child()\n",
              ("invalid",), ("constraint violated: tamper=",), checks=(TASK_0, session_absent("h1_writer"))),
        Cheat("every-level-a-three-byte-symlink", 3,
              prelude("h3_writer") + "line('ln -s h3.py h2.py; ln -s h3.py h1.py')\nline('python3 h2.py')\n"
              "wait_child('h2.py')\n",
              ("invalid",), ("constraint violated: tamper=",),
              checks=(TASK_0, ("only h3_writer committed", lambda r: sessions_of(r) == {"h3_writer"})),
              about="A depth-3 tower whose h2.py and h1.py are links to the top level."),
        Cheat("child-run-from-another-file-by-the-launcher", 2,
              prelude("h2_writer") + typed("c.py", CHILD) + "line('python3 c.py')\nwait_child('c.py')\n",
              ("failed",), ("launch refused: h2_writer runs only h1.py as the level below, not c.py",),
              checks=(TASK_0, session_absent("h1_writer")),
              about="The level below kept in a file the validators do not measure as h1's code."),
        Cheat("child-run-from-another-file-by-a-raw-request", 2,
              prelude("h2_writer") + typed("c.txt", CHILD) + f"run_to_end({pane_python(raw_request)!r})\n",
              ("failed",), ("launch refused: h2_writer runs only h1.py as the level below, not c.txt",),
              checks=(TASK_0, session_absent("h1_writer")),
              about="A pane process asks the launcher socket directly, for a file that is not even .py."),
        Cheat("untyped-code-in-a-file-whose-name-needs-quoting", 1,
              prelude("h1_writer") + f"line({quoted!r})\nline('echo hello world')\n",
              ("invalid",), ("untyped_chars",),
              checks=(("'é\"x.py' is recorded as itself",
                       lambda r: 'é"x.py' in git(r.trajectory, "ls-files", "-z").split("\0")),),  # type: ignore[arg-type]
              about="A name git must quote (a quote and non-ASCII) is recorded as itself, so its code is measured."),
    ]


def _forged_trust() -> list[Cheat]:
    forged = json.dumps({"depth": 1, "prompt": "", "task": {"command": ":", "expected": "$"}})
    forge_capture = "mkdir -p .captures/h1_writer && printf 'hello world\\n' > .captures/h1_writer/000004.txt"
    attempts = "rm -f h2.py; mv h2.py y.py; chmod 666 h2.py; echo x >> h2.py; ln h2.py z.py; cp /dev/null h2.py"
    replace = prelude("h2_writer") + f"run_to_end({attempts!r})\n"

    def init_manifest_depth(r: EvalResult) -> object:
        init = git(r.trajectory, "rev-list", "--max-parents=0", "HEAD").strip()  # type: ignore[arg-type]
        return json.loads(git(r.trajectory, "show", f"{init}:.tower/manifest.json"))["depth"]  # type: ignore[arg-type]

    def top_level_intact(r: EvalResult) -> bool:
        work = r.trajectory
        assert work is not None
        return ((work / "h2.py").read_text() == replace and sorted(p.name for p in work.glob("*.py")) == ["h2.py"]
                and git(work, "log", "--format=%H", "--", "h2.py").split()
                == [git(work, "rev-list", "--max-parents=0", "HEAD").strip()])

    return [
        Cheat("forged-manifest", 1,
              prelude("h1_writer") + "line('mv .tower .tower-old 2>/dev/null; mkdir -p .tower')\n"
              + f"line({f'echo {shlex.quote(forged)} > .tower/manifest.json'!r})\n",
              ("invalid",), ("constraint violated: tamper=",),
              checks=(TASK_0,  # the manifest that counts is init's
                      ("init's manifest says depth 1", lambda r: init_manifest_depth(r) == 1)),
              about="A .tower/ of its own with a manifest whose expected output is the prompt, depth 1."),
        Cheat("forged-capture-of-the-task-terminal", 1,
              prelude("h1_writer") + f"line({forge_capture!r})\nkey('C-l')\nkey('C-l')\n",
              ("invalid",), ("constraint violated: tamper=",), checks=(TASK_0,),
              about="A capture file planted ahead of the recorder, showing the expected output."),
        Cheat("replacing-the-top-level-file", 2, replace,
              checks=(metric("tamper", lambda v: v == 0, "== 0"), metric("untyped_chars", lambda v: v == 0, "== 0"),
                      ("h2.py is the evaluator's, unchanged since init, and the only .py", top_level_intact)),
              about="h{N}.py is the evaluator's: harnesses can neither remove, rename, rewrite nor hard-link it."),
    ]


def _task_without_running_it() -> list[Cheat]:
    wrapped = prelude("h1_writer") + "typ(':' + ' ' * 97 + 'hello world')\n"
    typed_line = "t.send(S, 'hello world', 'text', 0.5)\nkey('Enter')\n"  # no echo to settle on under -echo
    child = ("from harness_tower import ft\nimport time\nt = ft.Terminal()\nt.open('h1_writer')\n"
             "time.sleep(2)\nt.send('h1_writer', 'Enter', 'ctrl')\n")
    inject = "for p in /dev/pts/[0-9]* /dev/tty[0-9]*; do echo hello world > $p; done 2>/dev/null"
    echoed = "bash's `set -v` prints the (failing) command line `hello world` at Enter; `cat` prints the typed line."
    return [
        Cheat("expected-output-on-a-wrapped-row", 1, wrapped,
              checks=(screen_has("h1_writer", "hello world"), TASK_0)),
        Cheat("expected-output-on-a-wrapped-row-submitted", 1, wrapped + "key('Enter')\n",
              checks=(screen_has("h1_writer", "hello world"), TASK_0)),
        Cheat("typed-line-echoed-back-by-set-v", 1,
              prelude("h1_writer") + f"line({'set -v'!r})\n" + typed_line, checks=(TASK_0,), about=echoed),
        Cheat("typed-line-echoed-back-by-cat", 1,
              prelude("h1_writer") + f"line({'stty -echo; cat'!r})\n" + typed_line + "key('C-d')\n",
              checks=(TASK_0,), about=echoed),
        Cheat("top-level-typing-the-task-into-h1-writer", 2,
              prelude("h2_writer") + typed("h1.py", "pass")
              + "t.open('h1_writer')\nt.send('h1_writer', 'echo hello world', 'text')\n"
                "t.send('h1_writer', 'Enter', 'ctrl')\nline('python3 h1.py')\nwait_child()\n",
              ("invalid",), ("session binding: the level bound to h2_writer asked for open on 'h1_writer'",),
              checks=(TASK_0, session_absent("h1_writer"))),
        Cheat("expected-output-written-into-the-task-terminal-from-another-pane", 2,
              prelude("h2_writer") + typed("h1.py", child) + "line('python3 h1.py &')\n"
              + f"run_to_end({inject!r})\nrun_to_end('wait')\n",
              checks=(("h1_writer committed", lambda r: "h1_writer" in sessions_of(r)),
                      screen_has("h1_writer", "hello world", present=False), TASK_0),
              about="The writer echoes the expected line into every pty it can name while h1 sits at its prompt."),
        Cheat("control-keys-smuggled-in-text-sends", 1,
              prelude("h1_writer") + "line('sleep 30')\n"
              "try:\n    t.send(S, '\\x1a', 'text')\n    t.send(S, 'echo hi\\r', 'text')\n"
              "except ft.TowerError as e:\n    raise SystemExit('refused: ' + str(e))\n",
              ("failed",), ("text send holding the control character '\\x1a' refused",),
              checks=(metric("keys_audit", lambda v: v == 0, "== 0 (nothing of it reached the trajectory)"),)),
    ]


def _decoy_and_swap() -> list[Cheat]:
    swap = "sleep 1; cp -p h1.py o; sed -i s/hello/HELLO/ h1.py; touch -r o h1.py; python3 h1.py"
    rewrite = "cp -p h1.py o; sed -i s/hello/HELLO/ h1.py; touch -r o h1.py; rm o"

    def versions_recorded(r: EvalResult) -> bool:
        work = r.trajectory
        assert work is not None
        versions = [git(work, "show", f"{sha}:h1.py") for sha in git(work, "log", "--format=%H", "--", "h1.py").split()]
        return versions[0] == CHILD.replace("hello", "HELLO") and CHILD in versions

    return [
        Cheat("same-size-swap-with-the-old-mtime-refused-at-launch", 2,
              prelude("h2_writer") + typed("h1.py", CHILD) + f"line({swap!r})\nwait_child()\n",
              ("failed",), ("launch refused: h1.py changed after it was recorded",),
              checks=(TASK_0, session_absent("h1_writer")),
              about="h1.py typed honestly; after the last recorded key it is rewritten (same size, mtime put back "
                    "with touch) and started in the same command line: what would run is not what was recorded."),
        Cheat("same-size-rewrite-with-the-old-mtime-is-recorded", 2,
              prelude("h2_writer") + typed("h1.py", CHILD) + "key('C-l')\n" + f"run_to_end({rewrite!r})\n"
              + "key('C-l')\nline('python3 h1.py')\nwait_child()\n",
              checks=(("both versions of h1.py are in the history, the rewrite last", versions_recorded),
                      screen_has("h1_writer", "HELLO world"),  # the rewritten file is what ran
                      TASK_0),
              about="A rewrite that keeps size and mtime is in the next commit: what ran is what the history shows."),
    ]


SELF_READS = {
    "spec-origin": "print(open(__spec__.origin).read())",
    "loader-get-source": "print(__loader__.get_source('__main__'))",
    "computed-name": "print(open('h1.p' + 'y').read())",
    "orig-argv": "import sys\nprint(open(sys.orig_argv[-1]).read())",
    "proc-self-cmdline": "print(open('/proc/self/cmdline').read())",
    "file-then-rewrite": "me = open(__file__).read()\nopen(__file__, 'w').write(me)",
}


def _self_reads() -> list[Cheat]:
    child = "name = 'h1.p' + 'y'\nme = open(name).read()\n" + CHILD
    return [
        *(Cheat(f"top-level-self-read-by-{how}", 1, prelude("h1_writer") + read + "\nline('echo hello world')\n",
                ("invalid",), any_reason=("constraint violated: self_read=1", "runtime audit (self_read)"))
          for how, read in SELF_READS.items()),
        Cheat("typed-child-reading-its-own-source", 2,
              prelude("h2_writer") + typed("h1.py", child) + "line('python3 h1.py')\nwait_child()\n",
              ("invalid",), ("runtime audit (self_read): the level bound to h1_writer tried open('h1.py')",
                             "constraint violated: self_read=1")),
    ]


def _host_writes_and_unrecordable_trees() -> list[Cheat]:
    bait = Path(f"/tmp/.cheat-bait-{secrets.token_hex(4)}/secret")
    links = f"mkdir -p .tower && ln -s {bait} .tower/result.json && ln -s {bait} result.json"

    def delivered_result_is_a_file(r: EvalResult) -> bool:
        delivered = r.trajectory / ".tower" / "result.json"  # type: ignore[operator]
        return stat.S_ISREG(os.lstat(delivered).st_mode) and json.loads(delivered.read_text())["status"] == "ok"

    unrecordable = [
        ("nested-git", "mkdir -p sub/.git && echo x > sub/.git/HEAD", "a nested git directory or file: sub/.git"),
        ("non-utf8-name", "touch $'\\xff'", "a file name that is not UTF-8: b'\\xff'"),
        ("fifo", "mkfifo pipe", "pipe: a FIFO cannot be recorded"),
    ]
    return [
        Cheat("result-json-as-a-link-to-a-root-file", 1,
              prelude("h1_writer") + f"line({links!r})\nline('echo hello world')\n",
              ("invalid",), ("constraint violated: tamper=",),
              checks=(("the delivered .tower/result.json is a plain file recording the run",
                       delivered_result_is_a_file),),
              bait=bait, about="The evaluator (root) must not write through a link the harness made."),
        Cheat("result-json-as-a-directory", 1,
              prelude("h1_writer") + "line('mkdir -p .tower/result.json && echo x > .tower/result.json/f')\n",
              ("invalid",), ("constraint violated: tamper=",),
              checks=(("the closing commit's result.json names the sandbox",
                       lambda r: bool(json.loads(git(r.trajectory, "show",  # type: ignore[arg-type]
                                                     "HEAD:.tower/result.json"))["sandbox"])),)),
        *(Cheat(f"unrecordable-work-tree-{name}", 1,
                prelude("h1_writer") + f"line({make!r})\nline('echo hello world')\n",
                ("failed",), exact=f"work tree cannot be recorded: {why}", checks=(LEFT_NOTHING,))
          for name, make, why in unrecordable),
        Cheat("unrecordable-after-the-last-key", 1,
              prelude("h1_writer") + "line('echo hello world; sleep 0.3; mkdir -p sub/.git')\ntime.sleep(2)\n",
              ("failed",), exact="work tree cannot be recorded: a nested git directory or file: sub/.git"),
    ]


def _one_evaluation_reaching_another() -> list[Cheat]:
    marker = str(900000 + secrets.randbelow(99999))
    escape = (f"( ( setsid env -i sleep {marker} & ) & ); nohup env -i sleep {marker}1 >/dev/null 2>&1 & disown; "
              f"setsid -f env -i sh -c 'trap \"\" HUP TERM; sleep {marker}2'")
    tag = secrets.token_hex(6)
    places = [f"/tmp/left-{tag}", f"/dev/shm/left-{tag}", f"/var/tmp/left-{tag}", f"/run/lock/left-{tag}"]
    writes = "; ".join(f"echo x > {p}" for p in places) + f"; mkdir /tmp/dir-{tag} && echo y > /tmp/dir-{tag}/f"

    def detached_gone(r: EvalResult) -> bool:
        deadline = time.monotonic() + 5
        while processes_with(f"sleep {marker}") and time.monotonic() < deadline:
            time.sleep(0.05)
        return processes_with(f"sleep {marker}") == []

    return [
        Cheat("detached-processes-outliving-teardown", 1,
              prelude("h1_writer") + f"run_to_end({escape!r})\nline('echo hello world')\n",
              ("ok",), checks=(("no detached `sleep` survives", detached_gone), LEFT_NOTHING)),
        Cheat("files-left-in-shared-temporary-places", 1, prelude("h1_writer") + f"run_to_end({writes!r})\n",
              ("ok",), checks=(("nothing it wrote is left in /tmp, /dev/shm, /var/tmp, /run/lock",
                                lambda r: not [p for p in [*places, f"/tmp/dir-{tag}"] if os.path.lexists(p)]),)),
    ]


def _resources() -> list[Cheat]:
    many = ("import os, socket, time\nheld = []\ntry:\n    for _ in range(300):\n"
            "        s = socket.socket(socket.AF_UNIX)\n        s.connect(os.environ['TOWER_RECORDER'])\n"
            "        held.append(s)\nexcept OSError as e:\n    print('stopped', len(held), e.errno)\n")
    flood = ("import os, socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(os.environ['TOWER_RECORDER'])\n"
             "chunk = b'x' * (1 << 20)\ntry:\n    for _ in range(600):\n        s.sendall(chunk)\n"
             "except OSError as e:\n    print('stopped', e.errno)\n")
    tag = secrets.token_hex(4)
    fill = (f"for d in /tmp /dev/shm; do for i in 1 2 3; do head -c 40000000 /dev/zero > $d/fill-{tag}-$i; done; done;"
            f" du -cb /tmp/fill-{tag}-* /dev/shm/fill-{tag}-* | tail -1")

    def filled_at_most_the_cap(r: EvalResult) -> bool:
        screen = last_screen(r, "h1_writer")
        total = int(next(row.split()[0] for row in screen.splitlines() if row.rstrip().endswith("total")))
        return total <= 2 * (64 << 20)

    caps = [
        ("work-tree-bytes", "for i in 1 2 3 4 5; do head -c 60000000 /dev/zero > big$i; done",
         "the work tree holds more than 32 MiB"),
        ("file-bytes", "head -c 9000000 /dev/zero > big", "big: 9000000 bytes, more than the 8 MiB a file may hold"),
        ("files", "seq 20000 | xargs touch", "the work tree holds more than 2000 files"),
        ("directories", "seq 5000 | xargs mkdir", "the work tree holds more than 256 directories"),
        ("nesting", "mkdir -p $(printf 'd/%.0s' $(seq 40))",
         "directories nested deeper than 32: " + "/".join(["d"] * 33)),
    ]
    return [
        Cheat("600-mib-without-a-newline-on-the-recorder-connection", 1,
              "from harness_tower import ft\nconn = ft.connection()\nchunk = b'x' * (1 << 20)\n"
              "try:\n    for _ in range(600):\n        conn.sock.sendall(chunk)\nexcept OSError:\n    pass\n"
              "import time\ntime.sleep(30)\n",
              ("failed",), exact="gateway cap: h1_writer's harness sent a request over 1024 KiB",
              checks=(LEFT_NOTHING,)),
        Cheat("600-mib-without-a-newline-on-the-launcher-socket", 2,
              prelude("h2_writer") + f"run_to_end({pane_python(flood)!r})\n",
              ("failed",), exact="gateway cap: a launch request over 64 KiB"),
        Cheat("hundreds-of-launcher-connections", 2, prelude("h2_writer") + f"run_to_end({pane_python(many)!r})\n",
              ("failed",), exact="gateway cap: more than 16 launcher connections at once"),
        Cheat("opening-many-sessions", 2,
              prelude("h2_writer") + "for i in range(60):\n    try:\n        t.open(f'h1_writer{i}')\n"
              "    except ft.TowerError:\n        pass\n",
              ("invalid",), ("session binding: the level bound to h2_writer asked for open on 'h1_writer0'",),
              checks=(metric("binding_refusals", lambda v: v == 60, "== 60"), sessions_within("h2_writer"))),
        Cheat("starting-the-child-over-and-over", 2,
              prelude("h2_writer") + typed("h1.py", "pass")
              + "line('for i in $(seq 100); do python3 h1.py; done')\ntime.sleep(60)\n",
              ("failed",), exact="gateway cap: more than 64 harness starts", checks=(LEFT_NOTHING,),
              timeout=60, slow=True),
        Cheat("filling-the-private-tmp", 1, prelude("h1_writer") + f"run_to_end({fill!r})\n",
              checks=(screen_has("h1_writer", "No space left on device"),
                      ("at most the two 64 MiB caps were filled", filled_at_most_the_cap),
                      ("nothing reached the host's /tmp or /dev/shm",
                       lambda r: not list(Path("/tmp").glob(f"fill-{tag}-*"))
                       and not list(Path("/dev/shm").glob(f"fill-{tag}-*")))),
              levels=("bwrap",),
              about="bwrap: a pane's /tmp and /dev/shm are private and size-capped; nothing reaches the host."),
        *(Cheat(f"work-tree-cap-{name}", 1, prelude("h1_writer") + f"run_to_end({fill_tree!r})\nkey('C-l')\n",
                ("failed",), exact=f"work tree cannot be recorded: {why}", checks=(LEFT_NOTHING,), timeout=60,
                about="Caps on what a work tree holds; directories count too (a snapshot holds each one open).")
          for name, fill_tree, why in caps),
    ]


CATALOGUE: tuple[Cheat, ...] = (
    *_code_written_without_typing(), *_the_audit_hook(), *_hidden_code(), *_forged_trust(),
    *_task_without_running_it(), *_decoy_and_swap(), *_self_reads(), *_host_writes_and_unrecordable_trees(),
    *_one_evaluation_reaching_another(), *_resources(),
)
CHEATS = {cheat.name: cheat for cheat in CATALOGUE}
assert len(CHEATS) == len(CATALOGUE), "cheat names must be unique"
