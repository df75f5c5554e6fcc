"""One task in a sandbox: its directory and terminal prepared, then its check.

A tower evaluation, per task (the tower's H1 types into `h1_writer`):

    prepared = prepare(box, task)       # SetupFailed: that task failed, with the reason
    ...                                 # H1 reads the instruction off its screen and types
    verdict = check(box, prepared, screens)

`prepare` makes the task's fresh directory (outside the work tree), writes its set-up files
and runs its set-up commands there as the sandbox user, then gives the task terminal a new
pane started in that directory with the instruction shown above the first prompt.

What a check judges:

- `output`: the expected lines must be on the terminal's final screen as *printed output*,
  judged exactly like the validator `task_correct` (its `shows_output`): a row counts only if
  the terminal printed it in answer to a submitted command; a typed line, its echo, a wrapped
  or unsubmitted line does not. The screens judged are the task's own segment: the screen as
  the terminal opened (so the instruction shown there is never taken for output, whatever the
  first key is) and then one capture per key since. They come from the recorder either way:
  live, from a trusted client's `capture` after each key (`type_lines`), or from the delivered
  trajectory's `.captures/h1_writer/{seq}.txt` commits (`segment_screens`).
- `verify`: the command runs as the sandbox user, confined like a pane, in the task's
  directory, with the terminal's final text (the segment's last capture) on its stdin; exit
  status 0 passes. It runs right after the task, before the next one opens.

`verify_suite` types every reference solution (a trusted client, as H1 would type: text keys
of at most 16 characters, each line then Enter) and checks that it passes while a wrong
command does not; for a recovery task (tier 5) the wrong command is the solution's own first
attempt, which must fail on its own.
"""
from __future__ import annotations

import io
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness_tower import ft
from harness_tower.errors import TowerError
from harness_tower.recorder import MAX_TEXT
from harness_tower.sandbox import Sandbox
from harness_tower.tasks import PROMPT, Suite, Task
from validators.task_correct import Screen, output_rows, screens_of, shows_output
from validators.trajectory import Trajectory

SESSION = "h1_writer"  # the task terminal: H1 types there
WRONG = "echo wrong"  # a command that does no task of a suite
SETUP_TIMEOUT = 30.0
VERIFY_TIMEOUT = 30.0
FILE_MTIME = 1704067200  # 2024-01-01 UTC: set-up files carry a fixed time, never the clock's
ANSWER_TIMEOUT = 10.0  # how long a reference line may run before the next is typed anyway
CONTINUATION = "> "  # the shell's PS2 (Sandbox.env): inside a heredoc or an open quote
OPENED = "C-l"  # the key the opening screen is filed under: like a redraw, nothing it shows is output


class SetupFailed(TowerError):
    """A task's set-up failed: the task fails with this reason (the individual does not)."""


@dataclass(frozen=True)
class Prepared:
    """A task ready for H1: its directory, the banner its terminal showed, the screen as the
    terminal opened, and the session's key sequence number before the task's first key."""

    task: Task
    directory: Path
    banner: str
    opening: str
    start_seq: int


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str


def banner(task: Task) -> str:
    return f"# task: {task.instruction}"


def session_seq(box: Sandbox) -> int:
    """The task terminal's last key sequence number (0 before any key): a segment's bounds."""
    assert box.recorder is not None
    return box.recorder.seq(SESSION) if SESSION in box.recorder.sessions else 0


def _archive(files: dict[str, str]) -> bytes:
    """The set-up files as a tar stream, unpacked by the sandbox user (so H1 owns its files)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made: set[PurePosixPath] = set()
        for name, text in files.items():
            path = PurePosixPath(name)
            for parent in reversed(path.parents[:-1]):
                if parent not in made:
                    made.add(parent)
                    info = tarfile.TarInfo(str(parent))
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, FILE_MTIME
                    tar.addfile(info)
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, FILE_MTIME
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _failure(code: int | None, tail: str, timeout: float) -> str:
    if code is None:
        return f"timed out after {timeout:g}s"
    last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
    return f"exit status {code}" + (f": {last}" if last else "")


def prepare(box: Sandbox, task: Task, name: str | None = None) -> Prepared:
    """Set `task` up in a fresh directory (`name`, default its id) and open the task terminal
    there. Raises SetupFailed naming the set-up field that failed."""
    assert box.recorder is not None
    directory = box.task_dir(name or task.id)
    if task.setup.files:
        code, tail = box.run_confined("tar -xf -", directory, stdin=_archive(task.setup.files),
                                      timeout=SETUP_TIMEOUT)
        if code != 0:
            raise SetupFailed(f"setup.files: {_failure(code, tail, SETUP_TIMEOUT)}")
    if task.setup.commands:
        script = "set -e\n" + "\n".join(task.setup.commands)
        code, tail = box.run_confined(script, directory, timeout=SETUP_TIMEOUT)
        if code != 0:
            raise SetupFailed(f"setup.commands: {_failure(code, tail, SETUP_TIMEOUT)}")
    shown = banner(task)
    box.open_task_terminal(SESSION, directory, shown)
    opening, _ = box.recorder.capture(SESSION)
    return Prepared(task, directory, shown, opening, session_seq(box))


def judge_output(prepared: Prepared, screens: Sequence[Screen]) -> Verdict:
    """The `output` check on the segment's screens (see the module's docstring)."""
    expected = prepared.task.check.output
    assert expected is not None
    seen: list[Screen] = [(OPENED, prepared.opening), *screens]
    if shows_output(seen, "\n".join(expected), PROMPT):
        return Verdict(True, "the expected output was printed")
    printed = {row for row in output_rows(seen, PROMPT) if row is not None}
    missing = next((line for line in expected if line not in printed), None)
    if missing is not None:
        return Verdict(False, f"check.output: {missing!r} was not printed by a submitted command")
    return Verdict(False, "check.output: the expected lines were printed, but not together in order")


def run_verify(box: Sandbox, prepared: Prepared, final_text: str) -> Verdict:
    """The `verify` check: its command in the task's directory, `final_text` on its stdin."""
    command = prepared.task.check.verify
    assert command is not None
    code, tail = box.run_confined(command, prepared.directory, stdin=final_text.encode("utf-8"),
                                  timeout=VERIFY_TIMEOUT)
    if code == 0:
        return Verdict(True, "the verifier exited 0")
    return Verdict(False, f"check.verify: {_failure(code, tail, VERIFY_TIMEOUT)}")


def check(box: Sandbox, prepared: Prepared, screens: Sequence[Screen]) -> Verdict:
    """Whether the task was done: `screens` are the segment's key captures, oldest first."""
    if prepared.task.check.output is not None:
        return judge_output(prepared, screens)
    return run_verify(box, prepared, screens[-1][1] if screens else prepared.opening)


def segment_screens(traj: Trajectory, prepared: Prepared, end_seq: int | None = None) -> list[Screen]:
    """The task's segment from a delivered trajectory: the task terminal's key commits with
    `prepared.start_seq < Seq <= end_seq` (the next task's start; None: to the end)."""
    if SESSION not in traj.sessions:
        return []
    out: list[Screen] = []
    for commit, screen in zip(traj.commits_of(SESSION), screens_of(traj, SESSION), strict=True):
        seq = commit.trailers.seq()
        if seq is not None and seq > prepared.start_seq and (end_seq is None or seq <= end_seq):
            out.append(screen)
    return out


def _answered(term: ft.Terminal, deadline: float) -> str:
    """The screen once the shell asks for the next line (its prompt, or `> ` inside a heredoc,
    left of the cursor), or as it is at `deadline` (a command still running, or waiting for
    input): the whole answer to the last Enter, even where the recorder's settling stopped
    early (it can take a pipeline whose children are still starting for an idle one)."""
    while True:
        shown = term.capture(SESSION)
        screen, (x, y) = shown["capture"], shown["cursor"]
        rows = screen.split("\n")
        left = (rows[y] if 0 <= y < len(rows) else "")[:x].ljust(x)  # a capture drops trailing blanks
        if left.endswith((PROMPT, CONTINUATION)) or time.monotonic() >= deadline:
            return screen
        term.wait_output(SESSION, min(0.2, max(0.01, deadline - time.monotonic())))


def type_lines(term: ft.Terminal, lines: Sequence[str], wait: float = ANSWER_TIMEOUT) -> list[Screen]:
    """Type `lines` into the task terminal as H1 would (text keys of at most 16 characters,
    each line then Enter, the next line only once the shell is back or `wait` seconds have
    passed); returns the screen after every key (a trusted client's view). An Enter's screen
    is taken once its answer is complete: no key is sent in between, so every row it adds is
    that Enter's answer, as the validator would attribute it."""
    screens: list[Screen] = []
    for line in lines:
        for start in range(0, len(line), MAX_TEXT):
            chunk = line[start:start + MAX_TEXT]
            term.send(SESSION, chunk, "text")
            screens.append(("text", term.capture(SESSION)["capture"], chunk))
        term.send(SESSION, "Enter", "ctrl")
        screens.append(("Enter", _answered(term, time.monotonic() + wait)))
    return screens


def attempt(box: Sandbox, term: ft.Terminal, task: Task, lines: Sequence[str], name: str | None = None) -> Verdict:
    """Prepare `task`, type `lines`, check: a set-up that fails is this attempt's failure."""
    try:
        prepared = prepare(box, task, name)
    except SetupFailed as exc:
        return Verdict(False, f"set-up failed: {exc}")
    return check(box, prepared, type_lines(term, lines))


def verify_task(box: Sandbox, term: ft.Terminal, task: Task) -> str | None:
    """The one-line problem with `task` found by running it, or None: its reference solution
    must pass its check, and a wrong command (tier 5: the solution's first attempt) must not."""
    try:
        prepared = prepare(box, task)
    except SetupFailed as exc:
        return f"task {task.id!r}: {exc}"
    verdict = check(box, prepared, type_lines(term, task.solution))
    if not verdict.passed:
        return f"task {task.id!r}: solution: fails its own check ({verdict.reason})"
    recovery = task.tier == 5
    wrong = [task.solution[0]] if recovery else [WRONG]
    if attempt(box, term, task, wrong, f"{task.id}.wrong").passed:  # '.' never occurs in an id
        if recovery:
            return f"task {task.id!r}: solution: its first attempt alone already passes the check"
        return f"task {task.id!r}: check: passes after a wrong command ({WRONG!r})"
    return None


def verify_suite(box: Sandbox, term: ft.Terminal, suite: Suite) -> list[str]:
    """`verify_task` for every task of `suite`, in one sandbox: the problems, one line each."""
    return [problem for task in suite.tasks if (problem := verify_task(box, term, task)) is not None]


def verify_once(suite: Suite, isolation: str = "auto") -> list[str]:
    """`verify_in_sandbox`, remembered: a suite (its whole content, with this module's own
    source: the checks' meaning) that verified cleanly here is not typed through again.
    The mark lives in `TOWER_SUITE_CACHE` (default `~/.cache/harness-evolve/suites`; `off`
    for none); a problem is never remembered."""
    import hashlib
    import os

    where = os.environ.get("TOWER_SUITE_CACHE") or str(Path.home() / ".cache" / "harness-evolve" / "suites")
    digest = hashlib.blake2b(suite.model_dump_json().encode() + Path(__file__).read_bytes(), digest_size=16)
    mark = Path(where) / f"{suite.name}-{digest.hexdigest()}.ok"
    if where != "off" and mark.is_file():
        return []
    problems = verify_in_sandbox(suite, isolation)
    if not problems and where != "off":
        try:
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.write_text(f"{suite.name} v{suite.version}: {len(suite.tasks)} tasks verified\n", encoding="utf-8")
        except OSError:
            pass  # only a cache: verified again next time
    return problems


def verify_in_sandbox(suite: Suite, isolation: str = "auto") -> list[str]:
    """`verify_suite` in a sandbox of its own (nothing of it is kept)."""
    with tempfile.TemporaryDirectory(prefix="hes-suite-") as tmp:
        Path(tmp).chmod(0o755)  # the sandbox user must reach what lies below
        with Sandbox(Path(tmp) / "eval", isolation=isolation) as box:
            assert box.recorder is not None
            box.recorder.init_commit({"suite": suite.name, "version": suite.version, "purpose": "verify"})
            term = ft.Terminal(box.connect(SESSION))
            return [f"{suite.name}: {problem}" for problem in verify_suite(box, term, suite)]
