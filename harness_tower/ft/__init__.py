"""The `ft_*` op library that harness programs import: standard library only, fast to import.

Harness programs and the rendered levels use it as `from harness_tower import ft` and
`ft.<name>`; this module is that facade. Where each concept lives:

- `terminal`: the recorder connection, `Terminal` (open, send, capture, wait) and `Screen`;
- `experience`: `Experience` (QKV rows retrieved by Jaccard x weight, top-k) and its backends;
- `graph`: `Op`, `Context`, the type tags, `Status`, and the control flow (switch, sequential, recurrent);
- `ops`: capture, fixation, expert, the sends and the screen predicates;
- `typist`: the one typing state machine (line and statement modes) and the typing plans;
- `writer`: the ops that type a child and run it, and a level program's exit code;
- `build`: a task level's op graph from data (the graph genome's nodes), checked as it is built.

Ops compose into a static graph. Every op declares the types it takes and the type it
gives; composing a wrong graph raises `GraphError` before anything runs.

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

from typing import Any

from harness_tower.errors import GraphError, TowerError
from harness_tower.ft.build import NODE_OPS, build_graph
from harness_tower.ft.experience import Experience, Translate, keywords, load_backend
from harness_tower.ft.graph import (
    BOOL,
    OK,
    PLAN,
    SCREEN,
    STATUS,
    TEXT,
    Const,
    Context,
    Op,
    Recurrent,
    Sequential,
    Status,
    Switch,
)
from harness_tower.ft.ops import (
    Capture,
    Expert,
    Fixation,
    PromptReturned,
    ScreenBusy,
    ScreenHasLine,
    SendCtrl,
    SendText,
    parse_fixation_point,
    screen_state,
)
from harness_tower.ft.terminal import (
    MAX_TEXT,
    PROMPT,
    Connection,
    Screen,
    Terminal,
    chunks,
    connection,
)
from harness_tower.ft.typist import (
    END_MARK,
    EOF_MARK,
    MAX_BLANK,
    MODES,
    NEXT,
    Key,
    Machine,
    clean_line,
    generated,
    heredoc,
    run,
    should_flush,
    statement_blocks,
    typing_machine,
    typing_plan,
)
from harness_tower.ft.work import Chose, Done, Either, Instruction, Join, SlotExpert, work_through_tasks
from harness_tower.ft.writer import (
    SendPlan,
    TypingPlan,
    WriteGenerated,
    finish,
    wait_child,
    write_then_run,
)

__all__ = [
    "BOOL", "END_MARK", "EOF_MARK", "MAX_BLANK", "MAX_TEXT", "MODES", "NEXT", "OK", "PLAN", "PROMPT", "SCREEN",
    "STATUS", "TEXT",
    "NODE_OPS", "Capture", "Chose", "Either", "build_graph",
    "Connection", "Done", "Instruction", "Join", "SlotExpert", "Const", "Context", "Experience",
    "Expert", "Fixation", "GraphError", "Key", "Machine", "Op",
    "PromptReturned", "Recurrent", "Screen", "ScreenBusy", "ScreenHasLine", "SendCtrl", "SendPlan", "SendText",
    "Sequential", "Status", "Switch", "Terminal", "TowerError", "Translate", "TypingPlan", "WriteGenerated",
    "chunks", "clean_line", "connection", "finish", "ft_const", "ft_expert", "ft_fixation", "ft_prompt_returned",
    "ft_recurrent", "ft_screen_busy", "ft_screen_has_line", "ft_sequential", "ft_switch", "ft_tmux_capture_pane",
    "ft_tmux_send_ctrl", "ft_tmux_send_text", "ft_type_file", "ft_write_generated", "generated", "heredoc",
    "keywords", "load_backend", "parse_fixation_point", "run", "screen_state", "should_flush", "statement_blocks",
    "typing_machine", "typing_plan", "wait_child", "work_through_tasks", "write_then_run",
    "ft_instruction", "ft_join", "ft_slot_expert", "ft_chose", "ft_done",
]


# --------------------------------------------------------------------------------------
# The `ft_*` family (SPEC §5): what a harness composes its graph from.
# --------------------------------------------------------------------------------------
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


def ft_screen_has_line(screen: Op, text: str) -> Op:
    return ScreenHasLine(screen, text)


def ft_prompt_returned(screen: Op) -> Op:
    return PromptReturned(screen)


def ft_const(value: str) -> Op:
    return Const(value)


def ft_type_file(session: str, source: Op, filename: str, mode: str, chunk: int = MAX_TEXT,
                 settle_timeout: float = 5.0) -> Op:
    """Type `source` into `filename` in the given typing mode (see `typing_plan`)."""
    return SendPlan(session, TypingPlan(source, filename, mode, chunk), settle_timeout)


def ft_write_generated(session: str, step: Op, filename: str, mode: str, chunk: int = MAX_TEXT,
                       settle_timeout: float = 5.0, max_lines: int = 400, max_bytes: int = 1 << 16) -> Op:
    """Type `filename` line by line, each line the answer of `step` (see `WriteGenerated`)."""
    return WriteGenerated(session, step, filename, mode, chunk, settle_timeout, max_lines, max_bytes)


def ft_instruction() -> Op:
    return Instruction()


def ft_join(first: Op, second: Op) -> Op:
    return Join(first, second)


def ft_slot_expert(query: Op, instruction: Op, experience: Experience, topk: int = 1, name: str = "command") -> Op:
    return SlotExpert(query, instruction, experience, topk, name)


def ft_chose(decision: Op, kind: str) -> Op:
    return Chose(decision, kind)


def ft_done() -> Op:
    return Done()
