"""Cheats against the evaluator: harness programs that try to score without doing the work.

Each cheat is a harness program run as the top level of a real tower (`run_tower`) at both
isolation levels. It must end `invalid` or `failed` with the reason naming the rule it
broke (or, for the task check, score nothing), leave the host untouched and leave nothing
running. The list starts from issue 10 ("Scores that cannot be faked"); a cheat that is not
caught stays here as a strict xfail naming the hole.

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
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

from harness_tower.evaluate import EvalResult, evaluate, run_tower
from harness_tower.genome import load_genome
from harness_tower.sandbox import Limits, Sandbox
from tests.harness_tower.conftest import git, token_processes
from tests.harness_tower.test_render import SEEDS

pytestmark = pytest.mark.tmux
LEVELS = ["process", "bwrap"]
SMALL = Limits(cpu_seconds=60, memory_bytes=1 << 30, file_bytes=64 << 20, processes=64)
SEED_DIR = SEEDS[0].parent

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
    if st != 'ok':
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


def tower(source: str, depth: int, out: Path, isolation: str, timeout: float = 30, **kw: object) -> EvalResult:
    """Run `source` as the top level h{depth}.py; the trajectory must exist whatever happened."""
    result = run_tower(source, depth=depth, manifest=manifest(depth), out_dir=out, timeout=timeout,
                       limits=SMALL, isolation=isolation, **kw)  # type: ignore[arg-type]
    assert result.trajectory is not None and (result.trajectory / ".git").is_dir()
    assert result.isolation == isolation
    reason = result.error or ""
    assert "internal error" not in reason and "Traceback" not in reason, reason
    return result


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


def no_leftovers(result: EvalResult) -> None:
    """No process of that evaluation's sandbox (its token is in the closing commit) survives."""
    assert result.trajectory is not None
    token = json.loads(git(result.trajectory, "show", "HEAD:.tower/result.json"))["sandbox"]
    deadline = time.monotonic() + 5
    while token_processes(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert token_processes(token) == []


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


class PeakRss:
    """The evaluator's resident memory, sampled while a block runs (its peak, in bytes)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            with open("/proc/self/status") as fh:
                for row in fh:
                    if row.startswith("VmRSS:"):
                        self.peak = max(self.peak, int(row.split()[1]) * 1024)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss() -> int:
    with open("/proc/self/status") as fh:
        return next(int(row.split()[1]) * 1024 for row in fh if row.startswith("VmRSS:"))


# ======================================================================================
# Code written without typing
# ======================================================================================
@pytest.mark.parametrize("isolation", LEVELS)
def test_child_written_by_the_harness_before_its_first_key(short_tmp: Path, isolation: str) -> None:
    """open().write() of h1.py, then only `python3 h1.py` typed: refused and reported."""
    source = (f"open('h1.py', 'w').write({CHILD!r})\n" + prelude("h2_writer") + "line('python3 h1.py')\nwait_child()\n")
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "runtime audit" in reason(result) and "open('h1.py'" in reason(result) and "for writing" in reason(result)
    assert result.metrics["task_correct"] == 0
    assert not (result.trajectory / "h1.py").exists()  # type: ignore[operator]
    no_leftovers(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_child_written_16_characters_at_a_time_between_ctrl_l(short_tmp: Path, isolation: str) -> None:
    source = (prelude("h2_writer") + "import os\n"
              f"child = {CHILD!r}\n"
              "for i in range(0, len(child), 16):\n"
              "    fd = os.open('h1.py', os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)\n"
              "    os.write(fd, child[i:i + 16].encode())\n"
              "    os.close(fd)\n"
              "    key('C-l')\n"
              "line('python3 h1.py')\nwait_child()\n")
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "runtime audit" in reason(result) and "for writing" in reason(result)
    assert not (result.trajectory / "h1.py").exists()  # type: ignore[operator]


@pytest.mark.parametrize("isolation", LEVELS)
def test_child_decoded_from_typed_base64_is_untyped_code(short_tmp: Path, isolation: str) -> None:
    """The pane writes h1.py from an encoding: its characters never went through the terminal."""
    encoded = base64.b64encode(CHILD.encode()).decode()
    source = prelude("h2_writer") + f"line('echo {encoded} | base64 -d > h1.py')\nline('python3 h1.py')\nwait_child()\n"
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "constraint violated: untyped_chars=" in reason(result)
    assert result.metrics["untyped_chars"] > len(CHILD) // 2


@pytest.mark.parametrize("isolation", LEVELS)
def test_child_copied_from_the_top_level_is_untyped_code(short_tmp: Path, isolation: str) -> None:
    source = prelude("h2_writer") + "line('cp h2.py h1.py')\nline('python3 h1.py')\nwait_child()\n"
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "constraint violated: untyped_chars=" in reason(result)
    assert result.metrics["untyped_chars"] >= len(source) // 2


@pytest.mark.parametrize("isolation", LEVELS)
def test_child_extracted_from_its_own_file_by_a_typed_command(short_tmp: Path, isolation: str) -> None:
    """Depth 3: h3 types h2.py honestly; h2.py carries h1's lines in a string and h2 types only
    `awk ... h[2].py > h1.py` - its own file, named by a glob."""
    extract = "awk '/^#BEGIN1$/{f=1;next}/^#END1$/{f=0}f' h[2].py > h1.py"
    h2 = (prelude("h2_writer") + "_ = '''\n#BEGIN1\n" + CHILD + "#END1\n'''\n" + f"line({extract!r})\n"
          + "line('python3 h1.py')\nwait_child()\n")
    source = prelude("h3_writer") + typed("h2.py", h2) + "line('python3 h2.py')\nwait_child('h2.py', 60)\n"
    result = tower(source, 3, short_tmp / "e", isolation, timeout=60)
    assert result.status == "invalid"
    assert "constraint violated: self_read=1" in reason(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_child_copied_from_a_file_the_level_above_typed(short_tmp: Path, isolation: str) -> None:
    """h3 types the child into lib.txt; h2 types only `cp lib.txt h1.py`. By SPEC §4 every
    character of h1.py was typed (untyped_chars credits keys typed in any session since the
    file's previous change), so the rule does not fire; what prices the copy is h2's own
    typing: the whole child appears in one of h2's commits (max_diff_len@h2)."""
    h2 = prelude("h2_writer") + "line('cp lib.txt h1.py')\nline('python3 h1.py')\nwait_child()\n"
    source = (prelude("h3_writer") + typed("lib.txt", CHILD) + typed("h2.py", h2)
              + "line('python3 h2.py')\nwait_child('h2.py', 60)\n")
    result = tower(source, 3, short_tmp / "e", isolation, timeout=60)
    assert result.metrics["untyped_chars"] == 0
    assert result.metrics["max_diff_len@h2"] >= len(CHILD)  # type: ignore[operator]


@pytest.mark.parametrize("isolation", LEVELS)
def test_blinding_the_audit_hook_does_not_let_a_harness_write(short_tmp: Path, isolation: str) -> None:
    """Rebinding what the hook might use (os.fspath, os.path, the seal module's tables) and
    then writing h1.py into the work tree (found from `pwd`): refused, or counted as untyped."""
    source = ("import os, posixpath, sys\n"
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
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "runtime audit" in reason(result) or "untyped_chars" in reason(result)
    assert result.metrics["task_correct"] == 0 or result.metrics["untyped_chars"] > 0


@pytest.mark.parametrize("isolation", LEVELS)
def test_a_refusal_whose_report_the_harness_suppresses(short_tmp: Path, isolation: str) -> None:
    source = ("from harness_tower import ft\nreal = ft.Connection.call\n"
              "def call(self, request, timeout=120.0):\n"
              "    return {} if request.get('op') == 'audit' else real(self, request, timeout)\n"
              "ft.Connection.call = call\n" + prelude("h1_writer")
              + "try:\n    open('/etc/passwd').read()\nexcept OSError:\n    pass\nline('echo hello world')\n")
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "runtime audit (harnesses see only their terminal): the level bound to h1_writer tried open('/etc/passwd')" \
        in reason(result)


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


@pytest.mark.parametrize("isolation", LEVELS)
def test_a_metaclass_name_property_cannot_switch_the_hook_off(short_tmp: Path, isolation: str) -> None:
    """Harness code run from inside the hook (a class whose metaclass makes `__name__` a
    property) could reach the hook's frame and set its re-entry flag for good."""
    source = (HOOK_NAME_PROPERTY + prelude("h1_writer")
              + "try:\n    open('/etc/hostname').read()\n    line('echo read it')\nexcept OSError:\n    line('echo refused')\n")
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "runtime audit (harnesses see only their terminal): the level bound to h1_writer tried socket.__new__(<S>" \
        in reason(result)
    assert result.metrics["audit_refusals"] == 2  # the socket and the later open, both reported
    assert "refused" in last_screen(result, "h1_writer") and "read it" not in last_screen(result, "h1_writer")


@pytest.mark.parametrize("isolation", LEVELS)
def test_reports_silenced_by_swapping_the_recorder_descriptor(short_tmp: Path, isolation: str) -> None:
    """/dev/null dup2'ed over the recorder connection while a refused open is tried, then put back."""
    source = ("import os\nfrom harness_tower import ft\nfd = ft.connection().sock.fileno()\nsaved = os.dup(fd)\n"
              "os.dup2(os.open('/dev/null', os.O_RDONLY), fd)\n"
              "try:\n    open('/etc/passwd').read()\nexcept OSError:\n    pass\nos.dup2(saved, fd)\n"
              + prelude("h1_writer") + "line('echo hello world')\n")
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "failed"
    assert "sandbox: the runtime audit could not report a refusal; the level is stopped" in reason(result)
    assert result.metrics["task_correct"] == 0


# ======================================================================================
# Code hidden outside what is measured
# ======================================================================================
@pytest.mark.parametrize("isolation", LEVELS)
def test_child_under_tower_with_a_typed_loader(short_tmp: Path, isolation: str) -> None:
    source = (prelude("h2_writer") + "line('mkdir -p .tower')\n" + typed(".tower/c.py", CHILD)
              + typed("h1.py", "exec(open('.tower/c.py').read())") + "line('python3 h1.py')\nwait_child()\n")
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "constraint violated: tamper=" in reason(result)
    assert "runtime audit" in reason(result) and "open('.tower/c.py')" in reason(result)
    assert result.metrics["task_correct"] == 0


@pytest.mark.parametrize("isolation", LEVELS)
def test_child_under_tmp_with_a_typed_loader(short_tmp: Path, isolation: str) -> None:
    hidden = f"/tmp/cheat-{secrets.token_hex(4)}.py"
    source = (prelude("h2_writer") + typed(hidden, CHILD) + typed("h1.py", f"exec(open({hidden!r}).read())")
              + "line('python3 h1.py')\nwait_child()\n")
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "runtime audit" in reason(result) and f"open({hidden!r})" in reason(result)
    assert result.metrics["task_correct"] == 0
    assert not Path(hidden).exists()  # removed with the sandbox's user (process) or never on the host (bwrap)


HIDDEN_LOADER = """import os
real = os.fspath
os.fspath = lambda p: '/dev/null'
src = open({path!r}).read()
os.fspath = real
exec(src)
"""


@pytest.mark.parametrize("isolation", LEVELS)
def test_loader_that_blinds_the_hook_runs_hidden_code(short_tmp: Path, isolation: str) -> None:
    """The child's code is typed only as base64 into /tmp; h1.py is a loader that rebinds
    os.fspath (which the hook's path check calls) and execs the hidden file."""
    hidden = f"/tmp/cheat-{secrets.token_hex(4)}"
    encoded = base64.b64encode(CHILD.encode()).decode()
    source = (prelude("h2_writer") + f"line('echo {encoded} | base64 -d > {hidden}')\n"
              + typed("h1.py", HIDDEN_LOADER.format(path=hidden)) + "line('python3 h1.py')\nwait_child()\n")
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert f"runtime audit (harnesses see only their terminal): the level bound to h1_writer tried open({hidden!r})" \
        in reason(result)
    assert result.metrics["task_correct"] == 0
    assert not Path(hidden).exists()


@pytest.mark.parametrize("isolation", LEVELS)
def test_blinded_hook_self_read_of_a_path_from_the_screen(short_tmp: Path, isolation: str) -> None:
    source = (prelude("h1_writer") + "import os\nline('ls $PWD/h*')\n"
              "rows = [r.strip() for r in t.capture(S)['capture'].splitlines() if r.startswith('/')]\n"
              "real = os.fspath\nos.fspath = lambda p: '/dev/null'\nme = open(rows[0]).read()\nos.fspath = real\n"
              "line('echo hello world')\n")
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "runtime audit (self_read): the level bound to h1_writer tried open(" in reason(result)
    assert "h1.py') of its own source" in reason(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_child_symlinked_into_tower(short_tmp: Path, isolation: str) -> None:
    source = (prelude("h2_writer") + "line('mkdir -p .tower')\n" + typed(".tower/c.py", CHILD)
              + "line('ln -s .tower/c.py h1.py')\nline('python3 h1.py')\nwait_child()\n")
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid" and "constraint violated: tamper=" in reason(result)
    assert result.metrics["task_correct"] == 0 and "h1_writer" not in sessions_of(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_every_level_a_three_byte_symlink(short_tmp: Path, isolation: str) -> None:
    """A depth-3 tower whose h2.py and h1.py are links to the top level."""
    source = prelude("h3_writer") + "line('ln -s h3.py h2.py; ln -s h3.py h1.py')\nline('python3 h2.py')\nwait_child('h2.py')\n"
    result = tower(source, 3, short_tmp / "e", isolation)
    assert result.status == "invalid" and "constraint violated: tamper=" in reason(result)
    assert result.metrics["task_correct"] == 0 and sessions_of(result) == {"h3_writer"}


@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("how", ["launcher", "raw request"])
def test_child_run_from_another_file_than_h1_py(short_tmp: Path, isolation: str, how: str) -> None:
    """The level below kept in a file the validators do not measure as h1's code (c.py, c.txt)."""
    if how == "launcher":
        start = typed("c.py", CHILD) + "line('python3 c.py')\nwait_child('c.py')\n"
        name = "c.py"
    else:  # a pane process asks the launcher socket directly, for a file that is not even .py
        request = ("import json, os, socket, sys\n"
                   "s = socket.socket(socket.AF_UNIX)\ns.connect(os.environ['TOWER_RECORDER'])\n"
                   "s.sendall(json.dumps({'op': 'spawn', 'argv': ['c.txt']}).encode() + b'\\n')\n"
                   "[sys.stdout.write(m.decode()) for m in s.makefile('rb')]\n")
        start = typed("c.txt", CHILD) + f"run_to_end({pane_python(request)!r})\n"
        name = "c.txt"
    result = tower(prelude("h2_writer") + start, 2, short_tmp / "e", isolation)
    assert result.status == "failed"
    assert f"launch refused: h2_writer runs only h1.py as the level below, not {name}" in reason(result)
    assert result.metrics["task_correct"] == 0
    assert "h1_writer" not in sessions_of(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_untyped_code_in_a_file_whose_name_needs_quoting(short_tmp: Path, isolation: str) -> None:
    """A name git must quote (a quote and non-ASCII) is recorded as itself, so its code is measured."""
    encoded = base64.b64encode(CHILD.encode()).decode()
    command = f"echo {encoded} | base64 -d > " + "'é\"x.py'"
    source = prelude("h1_writer") + f"line({command!r})\nline('echo hello world')\n"
    result = tower(source, 1, short_tmp / "e", isolation)
    assert 'é"x.py' in git(result.trajectory, "ls-files", "-z").split("\0")  # type: ignore[arg-type]
    assert result.status == "invalid" and "untyped_chars" in reason(result)


# ======================================================================================
# Forged trust
# ======================================================================================
@pytest.mark.parametrize("isolation", LEVELS)
def test_forged_manifest(short_tmp: Path, isolation: str) -> None:
    """A .tower/ of its own with a manifest whose expected output is the prompt, depth 1."""
    forged = json.dumps({"depth": 1, "prompt": "", "task": {"command": ":", "expected": "$"}})
    source = (prelude("h1_writer") + "line('mv .tower .tower-old 2>/dev/null; mkdir -p .tower')\n"
              + f"line({f'echo {shlex.quote(forged)} > .tower/manifest.json'!r})\n")
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "constraint violated: tamper=" in reason(result)
    assert result.metrics["task_correct"] == 0  # the manifest that counts is init's
    init = git(result.trajectory, "rev-list", "--max-parents=0", "HEAD").strip()  # type: ignore[arg-type]
    assert json.loads(git(result.trajectory, "show", f"{init}:.tower/manifest.json"))["depth"] == 1  # type: ignore[arg-type]


@pytest.mark.parametrize("isolation", LEVELS)
def test_forged_capture_of_the_task_terminal(short_tmp: Path, isolation: str) -> None:
    """A capture file planted ahead of the recorder, showing the expected output."""
    forge = "mkdir -p .captures/h1_writer && printf 'hello world\\n' > .captures/h1_writer/000004.txt"
    source = prelude("h1_writer") + f"line({forge!r})\nkey('C-l')\nkey('C-l')\n"
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "invalid" and "constraint violated: tamper=" in reason(result)
    assert result.metrics["task_correct"] == 0


@pytest.mark.parametrize("isolation", LEVELS)
def test_the_top_level_file_cannot_be_replaced(short_tmp: Path, isolation: str) -> None:
    """h{N}.py is the evaluator's: harnesses can neither remove, rename, rewrite nor hard-link it."""
    attempts = "rm -f h2.py; mv h2.py y.py; chmod 666 h2.py; echo x >> h2.py; ln h2.py z.py; cp /dev/null h2.py"
    source = prelude("h2_writer") + f"run_to_end({attempts!r})\n"
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.metrics["tamper"] == 0 and result.metrics["untyped_chars"] == 0
    work = result.trajectory
    assert work is not None
    assert (work / "h2.py").read_text() == source and sorted(p.name for p in work.glob("*.py")) == ["h2.py"]
    assert git(work, "log", "--format=%H", "--", "h2.py").split() == [
        git(work, "rev-list", "--max-parents=0", "HEAD").strip()]


# ======================================================================================
# task_correct without running the task
# ======================================================================================
@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("submit", [False, True])
def test_expected_output_typed_on_a_wrapped_row(short_tmp: Path, isolation: str, submit: bool) -> None:
    source = prelude("h1_writer") + "typ(':' + ' ' * 97 + 'hello world')\n" + ("key('Enter')\n" if submit else "")
    result = tower(source, 1, short_tmp / "e", isolation)
    assert "hello world" in last_screen(result, "h1_writer")
    assert result.metrics["task_correct"] == 0


@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("echo", ["set -v", "stty -echo; cat"])
def test_typed_line_echoed_back_at_enter(short_tmp: Path, isolation: str, echo: str) -> None:
    """bash's `set -v` prints the (failing) command line `hello world` at Enter; `cat` prints the typed line."""
    typed_line = "t.send(S, 'hello world', 'text', 0.5)\nkey('Enter')\n"  # no echo to settle on under -echo
    source = prelude("h1_writer") + f"line({echo!r})\n" + typed_line + ("key('C-d')\n" if "cat" in echo else "")
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.metrics["task_correct"] == 0


@pytest.mark.parametrize("isolation", LEVELS)
def test_top_level_typing_the_task_into_h1_writer_itself(short_tmp: Path, isolation: str) -> None:
    source = (prelude("h2_writer") + typed("h1.py", "pass")
              + "t.open('h1_writer')\nt.send('h1_writer', 'echo hello world', 'text')\n"
                "t.send('h1_writer', 'Enter', 'ctrl')\nline('python3 h1.py')\nwait_child()\n")
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "session binding: the level bound to h2_writer asked for open on 'h1_writer'" in reason(result)
    assert result.metrics["task_correct"] == 0 and "h1_writer" not in sessions_of(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_expected_output_written_into_the_task_terminal_from_another_pane(short_tmp: Path, isolation: str) -> None:
    """The writer echoes the expected line into every pty it can name while h1 sits at its prompt."""
    child = ("from harness_tower import ft\nimport time\nt = ft.Terminal()\nt.open('h1_writer')\n"
             "time.sleep(2)\nt.send('h1_writer', 'Enter', 'ctrl')\n")
    inject = "for p in /dev/pts/[0-9]* /dev/tty[0-9]*; do echo hello world > $p; done 2>/dev/null"
    source = (prelude("h2_writer") + typed("h1.py", child) + "line('python3 h1.py &')\n"
              + f"run_to_end({inject!r})\nrun_to_end('wait')\n")
    result = tower(source, 2, short_tmp / "e", isolation)
    assert "h1_writer" in sessions_of(result)
    assert "hello world" not in last_screen(result, "h1_writer")
    assert result.metrics["task_correct"] == 0


@pytest.mark.parametrize("isolation", LEVELS)
def test_control_keys_smuggled_in_text_sends(short_tmp: Path, isolation: str) -> None:
    source = (prelude("h1_writer") + "line('sleep 30')\n"
              "try:\n    t.send(S, '\\x1a', 'text')\n    t.send(S, 'echo hi\\r', 'text')\n"
              "except ft.TowerError as e:\n    raise SystemExit('refused: ' + str(e))\n")
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "failed"
    assert "text send holding the control character '\\x1a' refused" in reason(result)
    assert result.metrics["keys_audit"] == 0  # nothing of it reached the trajectory


# ======================================================================================
# Recorded decoy, executed swap
# ======================================================================================
@pytest.mark.parametrize("isolation", LEVELS)
def test_same_size_swap_with_the_old_mtime_after_recording_is_refused_at_launch(short_tmp: Path,
                                                                                isolation: str) -> None:
    """h1.py typed honestly; after the last recorded key it is rewritten (same size, mtime put
    back with touch) and started in the same command line: what would run is not what was recorded."""
    swap = "sleep 1; cp -p h1.py o; sed -i s/hello/HELLO/ h1.py; touch -r o h1.py; python3 h1.py"
    source = prelude("h2_writer") + typed("h1.py", CHILD) + f"line({swap!r})\nwait_child()\n"
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "failed"
    assert "launch refused: h1.py changed after it was recorded" in reason(result)
    assert result.metrics["task_correct"] == 0 and "h1_writer" not in sessions_of(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_same_size_rewrite_with_the_old_mtime_is_recorded(short_tmp: Path, isolation: str) -> None:
    """A rewrite that keeps size and mtime is in the next commit: what ran is what the history shows."""
    rewrite = "cp -p h1.py o; sed -i s/hello/HELLO/ h1.py; touch -r o h1.py; rm o"
    source = (prelude("h2_writer") + typed("h1.py", CHILD) + "key('C-l')\n" + f"run_to_end({rewrite!r})\n"
              + "key('C-l')\nline('python3 h1.py')\nwait_child()\n")
    result = tower(source, 2, short_tmp / "e", isolation)
    work = result.trajectory
    assert work is not None
    versions = [git(work, "show", f"{sha}:h1.py") for sha in git(work, "log", "--format=%H", "--", "h1.py").split()]
    assert versions[0] == CHILD.replace("hello", "HELLO") and CHILD in versions
    assert "HELLO world" in last_screen(result, "h1_writer")  # the rewritten file is what ran
    assert result.metrics["task_correct"] == 0


# ======================================================================================
# Self-reads
# ======================================================================================
SELF_READS = {
    "spec origin": "print(open(__spec__.origin).read())",
    "loader get_source": "print(__loader__.get_source('__main__'))",
    "computed name": "print(open('h1.p' + 'y').read())",
    "orig_argv": "import sys\nprint(open(sys.orig_argv[-1]).read())",
    "proc self cmdline": "print(open('/proc/self/cmdline').read())",
    "file then rewrite": "me = open(__file__).read()\nopen(__file__, 'w').write(me)",
}


@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("read", list(SELF_READS))
def test_top_level_reading_its_own_source(short_tmp: Path, isolation: str, read: str) -> None:
    result = tower(prelude("h1_writer") + SELF_READS[read] + "\nline('echo hello world')\n", 1, short_tmp / "e",
                   isolation)
    assert result.status == "invalid"
    assert "constraint violated: self_read=1" in reason(result) or "runtime audit (self_read)" in reason(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_typed_child_reading_its_own_source(short_tmp: Path, isolation: str) -> None:
    child = "name = 'h1.p' + 'y'\nme = open(name).read()\n" + CHILD
    source = prelude("h2_writer") + typed("h1.py", child) + "line('python3 h1.py')\nwait_child()\n"
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "runtime audit (self_read): the level bound to h1_writer tried open('h1.py')" in reason(result)
    assert "constraint violated: self_read=1" in reason(result)


# ======================================================================================
# Padding
# ======================================================================================
PARTIAL_CHILD = """from harness_tower import ft
def go(t):
    t.open('h1_writer')
    t.send('h1_writer', 'echo hello world', 'text')
    t.send('h1_writer', 'Enter', 'ctrl')
go(ft.Terminal())
"""


@pytest.mark.parametrize("isolation", LEVELS)
def test_padding_with_ctrl_l_does_not_raise_syntax_ratio(short_tmp: Path, isolation: str) -> None:
    honest_src = prelude("h2_writer") + typed("h1.py", PARTIAL_CHILD) + "line('python3 h1.py')\nwait_child()\n"
    padded_src = (prelude("h2_writer") + typed("h1.py", PARTIAL_CHILD) + "for _ in range(300):\n    key('C-l')\n"
                  + "line('python3 h1.py')\nwait_child()\n")
    honest = tower(honest_src, 2, short_tmp / "honest", isolation)
    padded = tower(padded_src, 2, short_tmp / "padded", isolation)
    assert honest.status == padded.status == "ok"
    assert honest.metrics["syntax_ratio@h2"] < 1  # line mode leaves the def unparseable for a while
    assert padded.metrics["syntax_ratio@h2"] == honest.metrics["syntax_ratio@h2"]
    # the first C-l clears the screen; the other 299 change nothing and are counted idle
    assert padded.metrics["idle_keys@h2"] >= honest.metrics["idle_keys@h2"] + 299  # type: ignore[operator]


# ======================================================================================
# Host writes as root; work trees that cannot be recorded
# ======================================================================================
@pytest.fixture
def root_file(short_tmp: Path) -> Iterator[Path]:
    """A root-owned 0600 file outside any sandbox, in a directory only root may enter."""
    home = short_tmp / "root-only"
    home.mkdir(mode=0o700)
    target = home / "secret"
    target.write_text("root only\n")
    target.chmod(0o600)
    yield target


@pytest.mark.parametrize("isolation", LEVELS)
def test_result_json_as_a_link_to_a_root_file(short_tmp: Path, isolation: str, root_file: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the host-write cheat is about an evaluator running as root")
    before = (root_file.read_bytes(), os.stat(root_file).st_mode, os.stat(root_file).st_mtime_ns)
    links = f"mkdir -p .tower && ln -s {root_file} .tower/result.json && ln -s {root_file} result.json"
    source = prelude("h1_writer") + f"line({links!r})\nline('echo hello world')\n"
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "invalid" and "constraint violated: tamper=" in reason(result)
    assert (root_file.read_bytes(), os.stat(root_file).st_mode, os.stat(root_file).st_mtime_ns) == before
    delivered = result.trajectory / ".tower" / "result.json"  # type: ignore[operator]
    assert stat.S_ISREG(os.lstat(delivered).st_mode) and json.loads(delivered.read_text())["status"] == "ok"


@pytest.mark.parametrize("isolation", LEVELS)
def test_result_json_as_a_directory(short_tmp: Path, isolation: str) -> None:
    source = prelude("h1_writer") + "line('mkdir -p .tower/result.json && echo x > .tower/result.json/f')\n"
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "invalid" and "constraint violated: tamper=" in reason(result)
    assert json.loads(git(result.trajectory, "show", "HEAD:.tower/result.json"))["sandbox"]  # type: ignore[arg-type]


@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("make, why", [
    ("mkdir -p sub/.git && echo x > sub/.git/HEAD", "a nested git directory or file: sub/.git"),
    ("touch $'\\xff'", "a file name that is not UTF-8: b'\\xff'"),
    ("mkfifo pipe", "pipe: a FIFO cannot be recorded"),
])
def test_unrecordable_work_tree_fails_with_its_reason(short_tmp: Path, isolation: str, make: str, why: str) -> None:
    result = tower(prelude("h1_writer") + f"line({make!r})\nline('echo hello world')\n", 1, short_tmp / "e", isolation)
    assert result.status == "failed"
    assert reason(result) == f"work tree cannot be recorded: {why}"
    no_leftovers(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_unrecordable_after_the_last_key_is_not_called_ok(short_tmp: Path, isolation: str) -> None:
    source = prelude("h1_writer") + "line('echo hello world; sleep 0.3; mkdir -p sub/.git')\ntime.sleep(2)\n"
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "failed"
    assert reason(result) == "work tree cannot be recorded: a nested git directory or file: sub/.git"


# ======================================================================================
# One evaluation reaching another
# ======================================================================================
@pytest.mark.parametrize("isolation", LEVELS)
def test_detached_processes_do_not_survive_teardown(short_tmp: Path, isolation: str) -> None:
    marker = str(900000 + secrets.randbelow(99999))
    escape = (f"( ( setsid env -i sleep {marker} & ) & ); nohup env -i sleep {marker}1 >/dev/null 2>&1 & disown; "
              f"setsid -f env -i sh -c 'trap \"\" HUP TERM; sleep {marker}2'")
    source = prelude("h1_writer") + f"run_to_end({escape!r})\nline('echo hello world')\n"
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "ok", reason(result)
    deadline = time.monotonic() + 5
    while processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(f"sleep {marker}") == []
    no_leftovers(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_files_left_in_shared_temporary_places_are_removed(short_tmp: Path, isolation: str) -> None:
    marker = secrets.token_hex(6)
    places = [f"/tmp/left-{marker}", f"/dev/shm/left-{marker}", f"/var/tmp/left-{marker}", f"/run/lock/left-{marker}"]
    writes = "; ".join(f"echo x > {p}" for p in places) + f"; mkdir /tmp/dir-{marker} && echo y > /tmp/dir-{marker}/f"
    source = prelude("h1_writer") + f"run_to_end({writes!r})\n"
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "ok", reason(result)
    left = [p for p in [*places, f"/tmp/dir-{marker}"] if os.path.lexists(p)]
    assert left == []


@pytest.fixture
def shared_subdir() -> Iterator[Path]:
    """A world-writable sticky directory inside /tmp, as /tmp/.X11-unix is on many hosts."""
    path = Path(f"/tmp/.cheats-{secrets.token_hex(4)}")
    path.mkdir()
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("isolation", LEVELS)
def test_files_left_in_a_world_writable_subdirectory_are_removed(short_tmp: Path, isolation: str,
                                                                  shared_subdir: Path) -> None:
    left = shared_subdir / "left"
    source = prelude("h1_writer") + f"run_to_end({f'echo x > {left}; chmod 644 {left}'!r})\n"
    result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "ok", reason(result)
    assert not left.exists()


@pytest.mark.parametrize("isolation", [
    pytest.param("process", marks=pytest.mark.xfail(strict=True, reason=(
        "hole: under `process` pane shells share the host's network, loopback included: a typed command "
        "reaches any local service (an expert server past the relay, a Ray dashboard's job API that runs "
        "commands as the Ray user); nothing refuses or reports it"))),
    "bwrap"])
def test_a_pane_cannot_reach_a_loopback_service(short_tmp: Path, isolation: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    probe = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), 2)\n    print('REACHED')\n"
             "except OSError as e:\n    print('UNREACHABLE', e.errno)\n")
    source = prelude("h1_writer") + f"run_to_end({pane_python(probe)!r})\n"
    try:
        result = tower(source, 1, short_tmp / "e", isolation)
        try:
            accepted = listener.accept()[0]
            accepted.close()
        except OSError:
            accepted = None
    finally:
        listener.close()
    screen = last_screen(result, "h1_writer")
    assert accepted is None and any(row.startswith("UNREACHABLE ") for row in screen.splitlines()), screen


@pytest.mark.parametrize("isolation", LEVELS)
def test_another_sandbox_is_out_of_reach(short_tmp: Path, isolation: str) -> None:
    """From a pane of one evaluation: the other's recorder socket, tmux socket and work tree."""
    with Sandbox(short_tmp / "other", isolation=isolation) as other:
        assert other.recorder is not None
        other.write_top(1, "secret = 'other evaluation'\n")
        probe = (f"import socket\nfor path in ({str(other.recorder_socket)!r}, {str(other.socket)!r}):\n"
                 "    s = socket.socket(socket.AF_UNIX)\n"
                 "    try:\n        s.connect(path)\n        print('CONNECTED', path)\n"
                 "    except OSError as e:\n        print('REFUSED', e.errno)\n"
                 f"try:\n    print(open({str(other.live / 'h1.py')!r}).read())\n"
                 "except OSError as e:\n    print('UNREADABLE', e.errno)\n")
        source = prelude("h1_writer") + f"run_to_end({pane_python(probe)!r})\n"
        result = tower(source, 1, short_tmp / "e", isolation)
        screen = last_screen(result, "h1_writer")
        printed = [row.split() for row in screen.splitlines() if row.startswith(("REFUSED ", "UNREADABLE ", "CONNECTED "))]
        assert [row[0] for row in printed] == ["REFUSED", "REFUSED", "UNREADABLE"], screen
        assert "other evaluation" not in screen
        # and nothing reached the other evaluation: its recorder never committed a key
        assert other.recorder.commits == 0


# ======================================================================================
# Resources
# ======================================================================================
@pytest.mark.parametrize("isolation", LEVELS)
def test_600_mib_without_a_newline_on_the_recorder_connection(short_tmp: Path, isolation: str) -> None:
    source = ("from harness_tower import ft\nconn = ft.connection()\nchunk = b'x' * (1 << 20)\n"
              "try:\n    for _ in range(600):\n        conn.sock.sendall(chunk)\nexcept OSError:\n    pass\n"
              "import time\ntime.sleep(30)\n")
    base = rss()
    with PeakRss() as peak:
        result = tower(source, 1, short_tmp / "e", isolation)
    assert result.status == "failed"
    assert reason(result) == "gateway cap: h1_writer's harness sent a request over 1024 KiB"
    assert peak.peak - base < 200 << 20
    no_leftovers(result)


@pytest.mark.parametrize("isolation", LEVELS)
def test_600_mib_without_a_newline_on_the_launcher_socket(short_tmp: Path, isolation: str) -> None:
    flood = ("import os, socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(os.environ['TOWER_RECORDER'])\n"
             "chunk = b'x' * (1 << 20)\ntry:\n    for _ in range(600):\n        s.sendall(chunk)\n"
             "except OSError as e:\n    print('stopped', e.errno)\n")
    source = prelude("h2_writer") + f"run_to_end({pane_python(flood)!r})\n"
    base = rss()
    with PeakRss() as peak:
        result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "failed"
    assert reason(result) == "gateway cap: a launch request over 64 KiB"
    assert peak.peak - base < 200 << 20


@pytest.mark.parametrize("isolation", LEVELS)
def test_hundreds_of_launcher_connections(short_tmp: Path, isolation: str) -> None:
    many = ("import os, socket, time\nheld = []\ntry:\n    for _ in range(300):\n"
            "        s = socket.socket(socket.AF_UNIX)\n        s.connect(os.environ['TOWER_RECORDER'])\n"
            "        held.append(s)\nexcept OSError as e:\n    print('stopped', len(held), e.errno)\n")
    source = prelude("h2_writer") + f"run_to_end({pane_python(many)!r})\n"
    threads = threading.active_count()
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "failed"
    assert reason(result) == "gateway cap: more than 16 launcher connections at once"
    deadline = time.monotonic() + 15  # launcher threads wait at most 10 s for a request line
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads


@pytest.mark.parametrize("isolation", LEVELS)
def test_opening_many_sessions(short_tmp: Path, isolation: str) -> None:
    source = (prelude("h2_writer") + "for i in range(60):\n    try:\n        t.open(f'h1_writer{i}')\n"
              "    except ft.TowerError:\n        pass\n")
    result = tower(source, 2, short_tmp / "e", isolation)
    assert result.status == "invalid"
    assert "session binding: the level bound to h2_writer asked for open on 'h1_writer0'" in reason(result)
    assert result.metrics["binding_refusals"] == 60
    assert sessions_of(result) <= {"h2_writer"}


@pytest.mark.slow
@pytest.mark.parametrize("isolation", LEVELS)
def test_starting_the_child_over_and_over(short_tmp: Path, isolation: str) -> None:
    source = (prelude("h2_writer") + typed("h1.py", "pass")
              + "line('for i in $(seq 100); do python3 h1.py; done')\ntime.sleep(60)\n")
    result = tower(source, 2, short_tmp / "e", isolation, timeout=60)
    assert result.status == "failed"
    assert reason(result) == "gateway cap: more than 64 harness starts"
    no_leftovers(result)


def test_filling_the_private_tmp_stops_at_its_cap(short_tmp: Path) -> None:
    """bwrap: a pane's /tmp and /dev/shm are private and size-capped; nothing reaches the host."""
    marker = secrets.token_hex(4)
    fill = (f"for d in /tmp /dev/shm; do for i in 1 2 3; do head -c 40000000 /dev/zero > $d/fill-{marker}-$i; done; done;"
            f" du -cb /tmp/fill-{marker}-* /dev/shm/fill-{marker}-* | tail -1")
    source = prelude("h1_writer") + f"run_to_end({fill!r})\n"
    result = tower(source, 1, short_tmp / "e", "bwrap")
    screen = last_screen(result, "h1_writer")
    assert "No space left on device" in screen
    total = int(next(r.split()[0] for r in screen.splitlines() if r.rstrip().endswith("total")))
    assert total <= 2 * (64 << 20)
    assert not list(Path("/tmp").glob(f"fill-{marker}-*")) and not list(Path("/dev/shm").glob(f"fill-{marker}-*"))


@pytest.mark.xfail(strict=True, reason=(
    "hole: under `process` a pane writes into the host's shared /tmp and /dev/shm (RAM) with no cap but "
    "the per-file ulimit; the evaluation is ok and nothing names a cap (bwrap caps each at 64 MiB)"))
def test_filling_shared_tmp_under_process_is_capped(short_tmp: Path) -> None:
    marker = secrets.token_hex(4)
    fill = f"for i in 1 2 3; do head -c 40000000 /dev/zero > /dev/shm/fill-{marker}-$i; done"
    source = prelude("h1_writer") + f"run_to_end({fill!r})\n"
    result = tower(source, 1, short_tmp / "e", "process")
    assert not list(Path("/dev/shm").glob(f"fill-{marker}-*"))
    assert result.status == "failed" and "cap" in reason(result)


@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("fill, why", [
    ("for i in 1 2 3 4 5; do head -c 60000000 /dev/zero > big$i; done", "the work tree holds more than 32 MiB"),
    ("head -c 9000000 /dev/zero > big", "big: 9000000 bytes, more than the 8 MiB a file may hold"),
    ("seq 20000 | xargs touch", "the work tree holds more than 2000 files"),
    ("seq 5000 | xargs mkdir", "the work tree holds more than 256 directories"),
    ("mkdir -p $(printf 'd/%.0s' $(seq 40))", "directories nested deeper than 32: " + "/".join(["d"] * 33)),
])
def test_work_tree_caps(short_tmp: Path, isolation: str, fill: str, why: str) -> None:
    """Caps on what a work tree holds; directories count too (a snapshot holds each one open)."""
    source = prelude("h1_writer") + f"run_to_end({fill!r})\nkey('C-l')\n"
    result = tower(source, 1, short_tmp / "e", isolation, timeout=60)
    assert result.status == "failed"
    assert reason(result) == f"work tree cannot be recorded: {why}"
    no_leftovers(result)


# ======================================================================================
# Honest towers stay feasible
# ======================================================================================
@pytest.mark.slow
@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("seed", [p.name for p in sorted(SEED_DIR.glob("*.json"))])
def test_every_seed_is_honest_at_depths_1_to_4(short_tmp: Path, isolation: str, seed: str) -> None:
    genome = load_genome(str(SEED_DIR / seed))
    for depth in (1, 2, 3, 4):
        result = evaluate(genome, depth=depth, out_dir=short_tmp / f"d{depth}", isolation=isolation, timeout=120)
        m = result.metrics
        assert result.status == "ok", (depth, result.error)
        assert m["untyped_chars"] == 0 and m["tamper"] == 0, (depth, m)
        assert m["self_read"] == 0 and m["keys_audit"] == 0 and m["task_correct"] == 1, (depth, m)
        assert m["audit_refusals"] == 0 and m["binding_refusals"] == 0, (depth, m)
