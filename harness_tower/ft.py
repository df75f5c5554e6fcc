"""The `ft_*` op library that harness programs import: standard library only, fast to import.

Ops compose into a static graph. Every op declares the types it takes and the type it
gives; composing a wrong graph raises `GraphError` before anything runs. Running the
graph pulls values from the output: `Op.run(ctx)` checks, then calls `_apply`.

>>> exp = Experience.parse('''
... Q: $
... K: idle prompt
... V: text:type the command
... ---
... Q: $ echo hi
... K: typed
... V: ctrl:press Enter
... ''')
>>> exp.retrieve("$ echo hi", topk=2)
'ctrl:press Enter'
"""
from __future__ import annotations

import ast
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from harness_tower.errors import GraphError, TowerError

PROMPT = "$ "
EOF_MARK = "__TOWER_EOF__"
END_MARK = "__TOWER_END__"  # the value an expert gives when the child file is complete
MAX_TEXT = 16

# Value types flowing along graph edges.
SCREEN, TEXT, STATUS, BOOL, PLAN = "Screen", "Text", "Status", "Bool", "Plan"


# --------------------------------------------------------------------------------------
# The terminal: a thin client of the recorder, which owns tmux and git.
# --------------------------------------------------------------------------------------
class Connection:
    """One JSON-lines connection to the recorder: a request out, its reply back."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rwb")

    def call(self, request: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        self.sock.settimeout(timeout)
        self.file.write(json.dumps(request).encode() + b"\n")
        self.file.flush()
        try:
            line = self.file.readline()
        except socket.timeout:
            raise TowerError(f"recorder did not answer {request.get('op')!r} in time") from None
        if not line:
            raise TowerError("the recorder closed the connection")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise TowerError(reply.get("error", "recorder error"))
        return reply  # type: ignore[no-any-return]


_SHARED: list[Connection] = []


def connection() -> Connection:
    """This process's connection to the recorder: the descriptor it was started with
    ($TOWER_RECORDER_FD), bound by the recorder to the one session this level types into."""
    if not _SHARED:
        fd = os.environ.get("TOWER_RECORDER_FD")
        if not fd or not fd.isdigit():
            raise TowerError("TOWER_RECORDER_FD is not set: harnesses are started by the recorder")
        try:
            sock = socket.socket(fileno=int(fd))
        except OSError as exc:
            raise TowerError(f"no recorder connection on descriptor {fd}: {exc}") from None
        _SHARED.append(Connection(sock))
    return _SHARED[0]


class Terminal:
    """A level's terminal: requests to the recorder over its connection.

    Inside a sandbox that is the connection the level was started with; a trusted caller
    (a test, a benchmark) may pass a connected socket of its own (`Sandbox.connect`).
    """

    def __init__(self, sock: socket.socket | None = None, timeout: float = 120.0) -> None:
        self._conn = Connection(sock) if sock is not None else connection()
        self.timeout = timeout

    def call(self, **request: Any) -> dict[str, Any]:
        return self._conn.call(request, self.timeout)

    def open(self, session: str) -> None:
        self.call(op="open", session=session)

    def send(self, session: str, keys: str, kind: str, settle_timeout: float = 5.0) -> dict[str, Any]:
        return self.call(op="send", session=session, keys=keys, kind=kind, settle_timeout=settle_timeout)

    def capture(self, session: str) -> dict[str, Any]:
        return self.call(op="capture", session=session)

    def wait_output(self, session: str, timeout: float) -> bool:
        return bool(self.call(op="wait_output", session=session, timeout=timeout)["changed"])


class Screen:
    """One pane capture: its lines, cursor and index in the session's capture sequence."""

    __slots__ = ("text", "cursor", "index")

    def __init__(self, text: str, cursor: tuple[int, int], index: int) -> None:
        self.text, self.cursor, self.index = text, cursor, index

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")


# --------------------------------------------------------------------------------------
# Experience: (query, key, value, weight) rows, retrieved by Jaccard over keywords.
# --------------------------------------------------------------------------------------
def keywords(text: str) -> frozenset[str]:
    return frozenset(t for t in re.split(r"[\s:]+", text.lower()) if t)


class Experience:
    """A QKV table. Inline in the harness as a heredoc of `Q:/K:/V:/W:` blocks split by `---`."""

    def __init__(self, rows: Sequence[tuple[str, str, str, float]]) -> None:
        self.rows = list(rows)
        self._keys = [keywords(q) for q, _, _, _ in self.rows]

    @classmethod
    def parse(cls, text: str) -> Experience:
        rows: list[tuple[str, str, str, float]] = []
        for block in re.split(r"^---$", text, flags=re.M):
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if len(line) >= 2 and line[1] == ":" and line[0] in "QKVW":
                    raw = line[2:].strip()
                    fields[line[0]] = json.loads(raw) if raw.startswith('"') else raw
            if "V" in fields:
                rows.append((fields.get("Q", ""), fields.get("K", ""), fields["V"], float(fields.get("W", 1.0))))
        return cls(rows)

    def ranked(self, query: str, topk: int) -> list[tuple[float, int]]:
        q = keywords(query)
        scored = []
        for i, k in enumerate(self._keys):
            union = len(q | k)
            jac = len(q & k) / union if union else 0.0
            scored.append((jac * self.rows[i][3], i))
        # Among equal scores a row whose query is the query verbatim comes first: keyword sets
        # lose order and repetition, and the expert content source needs exact contexts to win.
        scored.sort(key=lambda s: (-s[0], self.rows[s[1]][0] != query, s[1]))
        return [s for s in scored[:topk] if s[0] > 0]

    def retrieve(self, query: str, topk: int = 1) -> str | None:
        """The value with the highest summed score among the top-k rows (None: no match)."""
        votes: dict[str, float] = {}
        first: dict[str, int] = {}
        exact: set[str] = set()
        for score, i in self.ranked(query, topk):
            value = self.rows[i][2]
            votes[value] = votes.get(value, 0.0) + score
            first.setdefault(value, i)
            if self.rows[i][0] == query:
                exact.add(value)
        if not votes:
            return None
        return max(votes, key=lambda v: (votes[v], v in exact, -first[v]))


def _backend(name: str, config: dict[str, Any] | None = None) -> Callable[[Experience, str, int], str | None]:
    """The translate function of a backend: `retrieval` inline, the others from
    `harness_tower.backends.<name>` (loaded only when used). With a config, the module's
    `backend(config)` builds it; without, its `translate` reads its settings from the environment."""
    if name == "retrieval":
        return lambda exp, query, topk: exp.retrieve(query, topk)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise GraphError(f"unknown expert backend {name!r}")
    try:
        module = __import__(f"harness_tower.backends.{name}", fromlist=["translate"])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("harness_tower.backends"):
            raise GraphError(f"unknown expert backend {name!r}") from None
        raise GraphError(f"expert backend {name!r} needs {exc.name!r}, which is not installed") from None
    if config:
        return module.backend(config)  # type: ignore[no-any-return]
    return module.translate  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------
# Ops and the graph
# --------------------------------------------------------------------------------------
class Context:
    """One pass over the graph: memoised op outputs plus the terminal."""

    def __init__(self, term: Terminal) -> None:
        self.term = term
        self.values: dict[int, Any] = {}
        self.capture_index: dict[str, int] = {}


class Op:
    takes: tuple[str, ...] = ()
    gives: str = STATUS

    def __init__(self, *inputs: Op) -> None:
        if len(inputs) != len(self.takes):
            raise GraphError(f"{type(self).__name__} takes {len(self.takes)} input(s), got {len(inputs)}")
        for i, (op, want) in enumerate(zip(inputs, self.takes)):
            if not isinstance(op, Op):
                raise GraphError(f"{type(self).__name__} input {i} must be an op, got {type(op).__name__}")
            if want != "Any" and op.gives != want:
                raise GraphError(f"{type(self).__name__} input {i} must give {want}, but {type(op).__name__} gives {op.gives}")
        self.inputs = inputs

    def run(self, ctx: Context) -> Any:
        key = id(self)
        if key not in ctx.values:
            ctx.values[key] = self._apply(ctx, *[op.run(ctx) for op in self._eager_inputs()])
        return ctx.values[key]

    def _eager_inputs(self) -> Sequence[Op]:
        return self.inputs

    def _apply(self, ctx: Context, *args: Any) -> Any:
        raise NotImplementedError


class Const(Op):
    def __init__(self, value: str, gives: str = TEXT) -> None:
        super().__init__()
        self.value, self.gives = value, gives

    def _apply(self, ctx: Context) -> Any:
        return self.value


class Capture(Op):
    gives = SCREEN

    def __init__(self, session: str) -> None:
        super().__init__()
        self.session = session

    def _apply(self, ctx: Context) -> Screen:
        reply = ctx.term.capture(self.session)
        index = ctx.capture_index.get(self.session, 0) + 1
        ctx.capture_index[self.session] = index
        return Screen(reply["capture"], tuple(reply["cursor"]), index)  # type: ignore[arg-type]


def parse_fixation_point(value: str) -> tuple[int, tuple[bool, int], int] | None:
    """A fixation policy value `"DT ROW COL"` -> (capture offset <= 0, (cursor-relative?, row), col).

    ROW is `c`, `c+K`, `c-K` (relative to the cursor row) or an absolute row number.
    Anything else is no point (None): the fixation op then looks where it looks by default.

    >>> parse_fixation_point("-1 c-2 4")
    (-1, (True, -2), 4)
    >>> parse_fixation_point("text:press Enter") is None
    True
    """
    m = re.fullmatch(r"\s*(-?\d{1,3})\s+(c(?:[+-]\d{1,3})?|\d{1,3})\s+(\d{1,3})\s*", value)
    if not m or int(m.group(1)) > 0:
        return None
    spec = m.group(2)
    row = (True, int(spec[1:] or 0)) if spec.startswith("c") else (False, int(spec))
    return int(m.group(1)), row, int(m.group(3))


def screen_state(screen: Screen) -> str:
    """What a fixation policy is queried with: the cursor row and the row above it."""
    lines, row = screen.lines, screen.cursor[1]
    return "\n".join(line.rstrip() for line in lines[max(0, row - 1):row + 1]).strip("\n")


class Fixation(Op):
    """Context around a fixation point (capture index, row, col) instead of the whole screen.

    Without a policy the point is (this capture, the cursor row or `row`, column 0). With a
    policy (an Experience whose values are points, see `parse_fixation_point`) the point is
    retrieved from the screen state; the op remembers its last captures so that a point may
    look back in time. The context is the rows within `radius` of the point, from its column.
    """

    takes, gives = (SCREEN,), TEXT
    HISTORY = 16

    def __init__(self, screen: Op, radius: int = 0, row: int | None = None,
                 policy: Experience | None = None, topk: int = 1) -> None:
        super().__init__(screen)
        if policy is not None and not isinstance(policy, Experience):
            raise GraphError("fixation policy must be an Experience")
        self.radius, self.row, self.policy, self.topk = radius, row, policy, topk
        self.history: list[Screen] = []

    def point(self, screen: Screen) -> tuple[Screen, int, int]:
        """The fixation point for this screen: (the capture looked at, row, col)."""
        self.history = (self.history + [screen])[-self.HISTORY:]
        default = (screen, screen.cursor[1] if self.row is None else self.row, 0)
        if self.policy is None:
            return default
        value = self.policy.retrieve(screen_state(screen), self.topk)
        parsed = parse_fixation_point(value) if value is not None else None
        if parsed is None:
            return default
        dt, (relative, r), col = parsed
        seen = self.history[max(0, len(self.history) - 1 + dt)]
        row = seen.cursor[1] + r if relative else r
        return seen, max(0, min(row, len(seen.lines) - 1)), col

    def _apply(self, ctx: Context, screen: Screen) -> str:
        return self.look(screen)

    def look(self, screen: Screen) -> str:
        """The context this op extracts from a screen (and remembers the screen)."""
        seen, row, col = self.point(screen)
        lines = seen.lines
        lo, hi = max(0, row - self.radius), min(len(lines), row + self.radius + 1)
        return "\n".join(line[col:].rstrip() for line in lines[lo:hi]).strip("\n")


class Expert(Op):
    """Query -> retrieval over experience -> optional backend translation; chainable."""

    takes, gives = (TEXT,), TEXT

    def __init__(self, query: Op, experience: Experience, topk: int = 1, backend: str = "retrieval",
                 name: str = "expert", config: dict[str, Any] | None = None) -> None:
        super().__init__(query)
        if not isinstance(experience, Experience) or not experience.rows:
            raise GraphError(f"expert {name!r} needs a non-empty Experience")
        self.experience, self.topk, self.name = experience, topk, name
        self.translate = _backend(backend, config)

    def _apply(self, ctx: Context, query: str) -> str:
        value = self.translate(self.experience, query, self.topk)
        if value is None:
            raise TowerError(f"impasse: expert {self.name!r} has no experience matching {query!r}")
        return value


class SendText(Op):
    """Types text in chunks of at most `chunk` characters; one recorded send per chunk."""

    takes, gives = (TEXT,), STATUS

    def __init__(self, session: str, text: Op, chunk: int = MAX_TEXT, settle_timeout: float = 5.0) -> None:
        super().__init__(text)
        if not 1 <= chunk <= MAX_TEXT:
            raise GraphError(f"chunk must be within 1..{MAX_TEXT}")
        self.session, self.chunk, self.settle = session, chunk, settle_timeout

    def _apply(self, ctx: Context, text: str) -> str:
        for piece in chunks(text, self.chunk):
            ctx.term.send(self.session, piece, "text", self.settle)
        return "ok"


class SendCtrl(Op):
    takes, gives = (TEXT,), STATUS

    def __init__(self, session: str, key: Op, settle_timeout: float = 5.0) -> None:
        super().__init__(key)
        self.session, self.settle = session, settle_timeout

    def _apply(self, ctx: Context, key: str) -> str:
        ctx.term.send(self.session, key, "ctrl", self.settle)
        return "ok"


class Switch(Op):
    """Routes by the selector's prefix (`text:...` -> branch "text"); only that branch runs."""

    takes, gives = (TEXT,), STATUS

    def __init__(self, selector: Op, branches: dict[str, Op]) -> None:
        super().__init__(selector)
        for name, op in branches.items():
            if not isinstance(op, Op) or op.gives != STATUS:
                raise GraphError(f"switch branch {name!r} must be an op giving Status")
        self.branches = branches

    def _apply(self, ctx: Context, selector: str) -> str:
        prefix = selector.split(":", 1)[0]
        if prefix not in self.branches:
            raise TowerError(f"impasse: switch has no branch for {prefix!r} (from {selector!r})")
        return self.branches[prefix].run(ctx)  # type: ignore[no-any-return]


class Sequential(Op):
    """Runs ops in order; the first error status returns early."""

    gives = STATUS

    def __init__(self, *ops: Op) -> None:
        self.takes = tuple("Any" for _ in ops)
        super().__init__(*ops)

    def _eager_inputs(self) -> Sequence[Op]:
        return ()

    def _apply(self, ctx: Context) -> str:
        result = "ok"
        for op in self.inputs:
            result = op.run(ctx)
            if isinstance(result, str) and result.startswith("error"):
                return result
        return "ok" if not isinstance(result, str) else result


class Recurrent(Op):
    """Repeats `body` (a fresh pass each time) until `until` is true or max iterations.

    With `busy` (a Bool op) and `wait_session`: while the terminal is busy (e.g. no prompt at
    the cursor), an iteration waits for its output (at most `wait_timeout` s, on output
    events, never a fixed sleep) instead of acting on a half-drawn screen.
    """

    gives = STATUS

    def __init__(self, body: Op, until: Op, max_iterations: int, wait_session: str | None = None,
                 wait_timeout: float = 0.0, busy: Op | None = None) -> None:
        self.takes = ("Any", BOOL) if busy is None else ("Any", BOOL, BOOL)
        super().__init__(*((body, until) if busy is None else (body, until, busy)))
        if busy is not None and not wait_session:
            raise GraphError("recurrent with a busy predicate needs the session to wait on")
        self.max_iterations = max_iterations
        self.wait_session, self.wait_timeout = wait_session, wait_timeout

    def _eager_inputs(self) -> Sequence[Op]:
        return ()

    def _apply(self, ctx: Context) -> str:
        body, until = self.inputs[:2]
        busy = self.inputs[2] if len(self.inputs) > 2 else None
        for _ in range(self.max_iterations):
            if until.run(Context(ctx.term)):
                return "ok"
            if busy is not None and busy.run(Context(ctx.term)):
                ctx.term.wait_output(self.wait_session, self.wait_timeout)  # type: ignore[arg-type]
                continue
            step = Context(ctx.term)
            step.capture_index = ctx.capture_index
            body.run(step)
        return "ok" if until.run(Context(ctx.term)) else "error: validator never passed"


class ScreenBusy(Op):
    """True when the cursor's line does not start with the prompt: a command is still running."""

    takes, gives = (SCREEN,), BOOL

    def _apply(self, ctx: Context, screen: Screen) -> bool:
        lines = screen.lines
        row = screen.cursor[1]
        line = lines[row].rstrip() if 0 <= row < len(lines) else ""
        return not line.startswith(PROMPT.rstrip())


class ScreenHasLine(Op):
    """True when a screen line (trailing spaces stripped, prompt lines excluded) equals `text`."""

    takes, gives = (SCREEN,), BOOL

    def __init__(self, screen: Op, text: str) -> None:
        super().__init__(screen)
        self.text = text

    def _apply(self, ctx: Context, screen: Screen) -> bool:
        return any(line.rstrip() == self.text for line in screen.lines if not line.startswith(PROMPT))


class PromptReturned(Op):
    """True when the last non-empty screen line is the bare prompt: the foreground job ended."""

    takes, gives = (SCREEN,), BOOL

    def _apply(self, ctx: Context, screen: Screen) -> bool:
        rows = [line.rstrip() for line in screen.lines if line.strip()]
        return bool(rows) and rows[-1] == PROMPT.rstrip()


class SendPlan(Op):
    """Executes a typing plan: a list of (kind, keys) sends."""

    takes, gives = (PLAN,), STATUS

    def __init__(self, session: str, plan: Op, settle_timeout: float = 5.0) -> None:
        super().__init__(plan)
        self.session, self.settle = session, settle_timeout

    def _apply(self, ctx: Context, plan: list[tuple[str, str]]) -> str:
        for kind, keys in plan:
            ctx.term.send(self.session, keys, kind, self.settle)
        return "ok"


class TypingPlan(Op):
    """Source text -> the sends that type it into a file in the given mode."""

    takes, gives = (TEXT,), PLAN

    def __init__(self, source: Op, filename: str, mode: str, chunk: int) -> None:
        super().__init__(source)
        if mode not in ("line", "statement"):
            raise GraphError(f"unknown typing mode {mode!r}")
        self.filename, self.mode, self.chunk = filename, mode, chunk

    def _apply(self, ctx: Context, source: str) -> list[tuple[str, str]]:
        return typing_plan(source, self.filename, self.mode, self.chunk)


def ft_tmux_capture_pane(session: str) -> Op:
    return Capture(session)


def ft_tmux_send_text(session: str, text: Op, chunk: int = MAX_TEXT, settle_timeout: float = 5.0) -> Op:
    return SendText(session, text, chunk, settle_timeout)


def ft_tmux_send_ctrl(session: str, key: Op, settle_timeout: float = 5.0) -> Op:
    return SendCtrl(session, key, settle_timeout)


def ft_fixation(screen: Op, radius: int = 0, row: int | None = None, policy: Experience | None = None,
                topk: int = 1) -> Op:
    return Fixation(screen, radius, row, policy, topk)


def ft_expert(query: Op, experience: Experience, topk: int = 1, backend: str = "retrieval",
              name: str = "expert", config: dict[str, Any] | None = None) -> Op:
    return Expert(query, experience, topk, backend, name, config)


def ft_switch(selector: Op, branches: dict[str, Op]) -> Op:
    return Switch(selector, branches)


def ft_sequential(*ops: Op) -> Op:
    return Sequential(*ops)


def ft_recurrent(body: Op, until: Op, max_iterations: int, wait_session: str | None = None,
                 wait_timeout: float = 0.0, busy: Op | None = None) -> Op:
    return Recurrent(body, until, max_iterations, wait_session, wait_timeout, busy)


def ft_screen_busy(screen: Op) -> Op:
    return ScreenBusy(screen)


def ft_const(value: str) -> Op:
    return Const(value)


# --------------------------------------------------------------------------------------
# Typing helpers
# --------------------------------------------------------------------------------------
def chunks(text: str, size: int) -> Iterable[str]:
    return (text[i:i + size] for i in range(0, len(text), size))


def statement_blocks(source: str) -> list[str]:
    """Split source into blocks of whole top-level statements (lines, newline-terminated)."""
    lines = source.splitlines(keepends=True)
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return lines
    ends = [node.end_lineno or node.lineno for node in body]
    blocks, start = [], 0
    for end in ends:
        blocks.append("".join(lines[start:end]))
        start = end
    if start < len(lines):
        tail = "".join(lines[start:])
        if blocks:
            blocks[-1] += tail
        else:
            blocks.append(tail)
    return [b for b in blocks if b]


def typing_plan(source: str, filename: str, mode: str, chunk: int) -> list[tuple[str, str]]:
    """The sends that type `source` into `filename`.

    `line`: `cat > file`, one Enter per line (the file grows a line at a time: small diffs,
    often unparseable mid-way). `statement`: one here-document per top-level statement
    (the file stays parseable, diffs are whole statements).
    """
    plan: list[tuple[str, str]] = []

    def text(s: str) -> None:
        plan.extend(("text", piece) for piece in chunks(s, chunk))

    def enter() -> None:
        plan.append(("ctrl", "Enter"))

    body = source if source.endswith("\n") else source + "\n"
    if mode == "line":
        text(f"cat > {filename}")
        enter()
        for line in body.splitlines():
            text(line)
            enter()
        plan.append(("ctrl", "C-d"))
        return plan
    if EOF_MARK in body:
        raise TowerError(f"source contains the here-document delimiter {EOF_MARK}")
    for i, block in enumerate(statement_blocks(body)):
        text(f"cat {'>' if i == 0 else '>>'} {filename} <<'{EOF_MARK}'")
        enter()
        for line in block.splitlines():
            text(line)
            enter()
        text(EOF_MARK)
        enter()
    return plan


def heredoc(text: str) -> str:
    """A triple-quoted Python literal whose value is exactly `text` (escapes what must be).

    >>> ast.literal_eval(heredoc("a'''b\\\\c'"))
    "a'''b\\\\c'"
    """
    # No two unescaped quotes in a row and none at the end: the literal cannot close early.
    body = re.sub(r"'(?='|$)", "\\\\'", text.replace("\\", "\\\\"))
    return "'''" + body + "'''"


# --------------------------------------------------------------------------------------
# Helpers the rendered level programs call after their graph has run.
# --------------------------------------------------------------------------------------
def wait_child(term: Terminal, session: str, child: str, timeout: float) -> str:
    """Wait (on output events, never a fixed sleep) until the prompt returns after `child` ran.

    Returns "ok", or an error status naming the child that failed or hung.
    """
    returned = PromptReturned(ft_tmux_capture_pane(session))
    deadline = time.monotonic() + timeout
    while not returned.run(Context(term)):
        left = deadline - time.monotonic()
        if left <= 0:
            return f"error: {child} did not finish within {timeout:g}s"
        term.wait_output(session, min(left, 1.0))
    tail = term.capture(session)["capture"].split(f"python3 {child}")[-1].split("\n")
    child_session = child.replace(".py", "_writer")
    failed = [line for line in tail if line.startswith("Traceback") or line.startswith(f"{child_session}: error")]
    if failed:
        last = [line.strip() for line in tail if line.strip() and line.rstrip() != PROMPT.rstrip()]
        return f"error: {child} failed: {last[-1] if last else failed[0]}"
    return "ok"


def write_then_run(term: Terminal, session: str, write: Op, child: str, chunk: int, settle: float,
                   child_timeout: float) -> int:
    """A writer level's run: type the child (`write`), start it in the writer's own terminal,
    wait for its prompt to return; the exit code for the level program."""
    run = ft_sequential(write, ft_tmux_send_text(session, ft_const("python3 " + child), chunk, settle),
                        ft_tmux_send_ctrl(session, ft_const("Enter"), settle))
    status = run.run(Context(term))
    if status == "ok":
        status = wait_child(term, session, child, child_timeout)
    return finish(session, status)


def finish(session: str, status: str) -> int:
    """Exit code for a level program; an error status is printed as one line on stderr."""
    if status == "ok":
        return 0
    print(f"{session}: {status}", file=sys.stderr)
    return 1


def ft_screen_has_line(screen: Op, text: str) -> Op:
    return ScreenHasLine(screen, text)


def ft_prompt_returned(screen: Op) -> Op:
    return PromptReturned(screen)


def ft_type_file(session: str, source: Op, filename: str, mode: str, chunk: int = MAX_TEXT,
                 settle_timeout: float = 5.0) -> Op:
    """Type `source` into `filename` in the given typing mode (see `typing_plan`)."""
    return SendPlan(session, TypingPlan(source, filename, mode, chunk), settle_timeout)


# --------------------------------------------------------------------------------------
# The expert content source: a child file generated line by line from the screen.
# --------------------------------------------------------------------------------------
def clean_line(value: str) -> str:
    """The first line of an expert's answer, without control characters (tabs become spaces)."""
    line = value.split("\n", 1)[0].replace("\t", "    ")
    return "".join(c for c in line if c >= " " and c != "\x7f")


def should_flush(written: str, pending: list[str]) -> bool:
    """Statement mode: close the here-document once the file plus the pending lines parse."""
    if not any(line.strip() for line in pending):
        return False
    try:
        ast.parse(written + "".join(line + "\n" for line in pending))
    except (SyntaxError, ValueError, RecursionError):
        return False
    return True


class WriteGenerated(Op):
    """Types a child file whose lines come one at a time from `step`, run afresh for each line.

    `step` is typically expert(fixation(capture)): each line is decided by looking at the
    screen after the previous one was typed. It ends on `END_MARK`, on `max_blank` blank lines
    in a row (a model with nothing to say), or with an error status at `max_lines`/`max_bytes`
    (a rambling model cannot type forever). Modes as in `typing_plan`: `line` (`cat > file`)
    or `statement` (here-documents, each closed as soon as the file would parse).
    """

    takes, gives = (TEXT,), STATUS

    def __init__(self, session: str, step: Op, filename: str, mode: str, chunk: int = MAX_TEXT,
                 settle_timeout: float = 5.0, max_lines: int = 400, max_bytes: int = 1 << 16,
                 max_blank: int = 3) -> None:
        super().__init__(step)
        if mode not in ("line", "statement"):
            raise GraphError(f"unknown typing mode {mode!r}")
        if not 1 <= chunk <= MAX_TEXT:
            raise GraphError(f"chunk must be within 1..{MAX_TEXT}")
        self.session, self.filename, self.mode, self.chunk = session, filename, mode, chunk
        self.settle, self.max_lines, self.max_bytes, self.max_blank = settle_timeout, max_lines, max_bytes, max_blank

    def _eager_inputs(self) -> Sequence[Op]:
        return ()

    def _send(self, ctx: Context, kind: str, keys: str) -> None:
        if kind == "text":
            for piece in chunks(keys, self.chunk):
                ctx.term.send(self.session, piece, "text", self.settle)
        else:
            ctx.term.send(self.session, keys, "ctrl", self.settle)

    def _await_row(self, ctx: Context, prompt: str) -> None:
        """Wait until the cursor row is the bare `prompt`: the next look sees a settled screen."""
        deadline = time.monotonic() + self.settle
        while True:
            reply = ctx.term.capture(self.session)
            rows, y = reply["capture"].split("\n"), reply["cursor"][1]
            left = deadline - time.monotonic()
            if (0 <= y < len(rows) and rows[y].rstrip() == prompt.rstrip()) or left <= 0:
                return
            ctx.term.wait_output(self.session, min(left, 0.5))

    def _apply(self, ctx: Context) -> str:
        (step,) = self.inputs
        heredoc_open = f"<<'{EOF_MARK}'"
        if self.mode == "line":
            self._send(ctx, "text", f"cat > {self.filename}")
            self._send(ctx, "ctrl", "Enter")
        written, lines, size, blanks, opened = "", 0, 0, 0, False
        pending: list[str] = []
        status = "ok"
        while True:
            if lines >= self.max_lines or size >= self.max_bytes:
                status = f"error: expert source exceeded max_lines={self.max_lines} or max_bytes={self.max_bytes}"
                break
            look = Context(ctx.term)
            look.capture_index = ctx.capture_index
            value = step.run(look)
            if value.strip() == END_MARK:
                break
            line = clean_line(value)
            blanks = blanks + 1 if not line else 0
            if blanks >= self.max_blank:
                break
            if self.mode == "statement":
                if line == EOF_MARK:
                    continue  # would close the here-document early
                if not pending:
                    self._send(ctx, "text", f"cat {'>>' if opened else '>'} {self.filename} {heredoc_open}")
                    self._send(ctx, "ctrl", "Enter")
                    self._await_row(ctx, "> ")
                    opened = True
            if line:
                self._send(ctx, "text", line)
            self._send(ctx, "ctrl", "Enter")
            lines, size = lines + 1, size + len(line.encode("utf-8")) + 1
            if self.mode == "statement":
                pending.append(line)
                if should_flush(written, pending):
                    self._send(ctx, "text", EOF_MARK)
                    self._send(ctx, "ctrl", "Enter")
                    self._await_row(ctx, PROMPT)
                    written += "".join(p + "\n" for p in pending)
                    pending = []
        if self.mode == "line":
            self._send(ctx, "ctrl", "C-d")
        elif pending or not opened:
            if not opened:
                self._send(ctx, "text", f"cat > {self.filename} {heredoc_open}")
                self._send(ctx, "ctrl", "Enter")
            self._send(ctx, "text", EOF_MARK)
            self._send(ctx, "ctrl", "Enter")
        return status


def ft_write_generated(session: str, step: Op, filename: str, mode: str, chunk: int = MAX_TEXT,
                       settle_timeout: float = 5.0, max_lines: int = 400, max_bytes: int = 1 << 16) -> Op:
    """Type `filename` line by line, each line the answer of `step` (see `WriteGenerated`)."""
    return WriteGenerated(session, step, filename, mode, chunk, settle_timeout, max_lines, max_bytes)
