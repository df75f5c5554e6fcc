"""Rendering a genome into the source of `h{n}.py`, with its experience inline.

`render(genome, 1)` is the task level; `render(genome, n)` for n >= 2 writes and runs level
n-1. Where the child's source comes from is the genome's content source:
`literal` (the child's full source is inline experience: bytes grow level over level) or
`kernel` (a self-referential template renders the child from the level number alone, so
all levels n >= 2 have the same size: the fixed point).

>>> from harness_tower.genome import TowerGenome
>>> g = TowerGenome(content_source="kernel")
>>> len(render(g, 3)) - len(render(g, 2))
0
"""
from __future__ import annotations

import ast
import functools
import json
import re
import string
import threading

from harness_tower.errors import GenomeError
from harness_tower.ft import (
    END_MARK,
    PROMPT,
    SCREEN,
    Const,
    Experience,
    Fixation,
    Key,
    Screen,
    generated,
    heredoc,
    run,
)
from harness_tower.genome import ExperienceEntry, TowerGenome

# CPython 3.11's ast module keeps one recursion counter for all threads (gh-106905): two threads
# parsing at once can raise SystemError. Evaluations run one per process in actors, but a
# driver that evaluates on threads (the soak, a test) must not lose one to it.
_PARSE = threading.Lock()

H1_TEMPLATE = '''#!/usr/bin/env python3
"""h1: the task level. For each task of its sample it reads what was asked, decides from what
its terminal shows what to do, and types the command its experience gives for it."""
import sys

from harness_tower import ft

SESSION = "h1_writer"
TOPK, MAX_ITERATIONS, CHUNK, SETTLE = {topk}, {max_iterations}, {chunk}, {settle}

# Experience: what the terminal shows -> what to do ("text:..." type a command, "done:..." finish).
DECISION = ft.Experience.parse({decision})

# Experience: what to do and what was asked -> the command, its {{slots}} filled from the instruction.
COMMAND = ft.Experience.parse({command})
{policy}
# The op graph, run once per task: nodes in order, each reading nodes before it; the last is the task.
GRAPH = [
{graph}
]


def main():
    term = ft.Terminal()
    term.open(SESSION)
    task = ft.build_graph(GRAPH, {{"decision": DECISION, "command": COMMAND{look}}}, SESSION, topk=TOPK,
                          max_iterations=MAX_ITERATIONS, chunk=CHUNK, settle=SETTLE)
    return ft.finish(SESSION, ft.work_through_tasks(term, task))


if __name__ == "__main__":
    sys.exit(main())
'''

# The writer's driver, shared by both content sources. It holds no '%' so that it can
# live inside the kernel's %-template unchanged.
WRITER_MAIN = '''

def main():
    session, child = f"h{LEVEL}_writer", f"h{LEVEL - 1}.py"
    term = ft.Terminal()
    term.open(session)
    write = ft.ft_type_file(session, ft.ft_const(child_source(LEVEL - 1)), child, MODE, CHUNK, SETTLE)
    return ft.write_then_run(term, session, write, child, CHUNK, SETTLE, CHILD_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
'''

LITERAL_TEMPLATE = '''#!/usr/bin/env python3
"""h{level}: types the source of h{child}.py (held inline below) into h{level}_writer, then runs it."""
import sys

from harness_tower import ft

LEVEL = {level}
MODE, CHUNK, SETTLE, CHILD_TIMEOUT = {mode!r}, {chunk}, {settle}, {child_timeout}

# Experience: the child's whole source.
CHILD_SOURCE = {source}


def child_source(level):
    return CHILD_SOURCE
'''

KERNEL_TEMPLATE = '''#!/usr/bin/env python3
"""h%(level)d: a kernel harness. It renders the level below from its template and the
level number alone, types it into its own terminal, then runs it."""
import sys

from harness_tower import ft

LEVEL = %(level)d
MODE, CHUNK, SETTLE, CHILD_TIMEOUT = {mode!r}, {chunk}, {settle}, {child_timeout}

# Experience: the task level, the one level the kernel cannot derive.
H1 = %(h1)s

# The kernel: the template every level n >= 2 is rendered from.
KERNEL = %(kernel)s


def child_source(level):
    if level == 1:
        return H1
    return KERNEL %% {{"level": level, "kernel": ft.heredoc(KERNEL), "h1": ft.heredoc(H1)}}
'''


# With a `fixation` table the task level's decision expert looks where that policy says.
H1_POLICY = ("\n# Experience: where to look (screen state -> fixation point).\n"
             "FIXATION = ft.Experience.parse({fixation})\n")
H1_LOOK = ', "fixation": FIXATION'


@functools.lru_cache(maxsize=16)
def _slots(template: str) -> tuple[frozenset[str], frozenset[str]]:
    """The `{name}` slots of a template and its `%(name)` slots (the kernel's second stage)."""
    braces = frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)
    percents = frozenset(m for m in re.findall(r"%%|%\((\w+)\)", template) if m)
    return braces, percents


def fill(template: str, **values: object) -> str:
    """`template.format(**values)`, refusing a template whose slots are not exactly `values`: a
    template that drifted from the code filling it fails loudly instead of rendering less."""
    slots = _slots(template)[0]
    if slots != set(values):
        raise AssertionError(f"template slots {sorted(slots)} do not match the values {sorted(values)}")
    return template.format(**values)


def fill_percent(template: str, **values: object) -> str:
    """`template % values`, with the same check for `%(name)` slots."""
    slots = _slots(template)[1]
    if slots != set(values):
        raise AssertionError(f"template slots {sorted(slots)} do not match the values {sorted(values)}")
    return template % values


def experience_heredoc(entries: tuple[ExperienceEntry, ...]) -> str:
    """The inline form of an experience table: `Q:/K:/V:/W:` blocks separated by `---`."""
    blocks = []
    for e in entries:
        fields = []
        for tag, value in (("Q", e.query), ("K", e.key), ("V", e.value)):
            safe = value == value.strip() and "\n" not in value and not value.startswith('"')
            fields.append(f"{tag}: {value if safe else _json(value)}")
        fields.append(f"W: {e.weight:g}")
        blocks.append("\n".join(fields))
    return heredoc("\n" + "\n---\n".join(blocks) + "\n")


def _json(value: str) -> str:
    return json.dumps(value)


def render(genome: TowerGenome, n: int) -> str:
    """The source of `h{n}.py` for this genome (n >= 1); it always parses."""
    if not isinstance(n, int) or n < 1:
        raise GenomeError(f"level must be an integer >= 1, got {n!r}")
    if n == 1:
        source = render_h1(genome)
    elif genome.content_source == "literal":
        source = fill(LITERAL_TEMPLATE, level=n, child=n - 1, mode=genome.typing_mode, chunk=genome.chunk,
                      settle=genome.settle_timeout, child_timeout=genome.child_timeout,
                      source=heredoc(render(genome, n - 1))) + WRITER_MAIN
    elif genome.content_source == "kernel":
        kernel = kernel_template(genome)
        source = fill_percent(kernel, level=n, kernel=heredoc(kernel), h1=heredoc(render(genome, 1)))
    else:
        source = render_expert(genome, n)
    try:
        with _PARSE:
            ast.parse(source)
    except SyntaxError as exc:  # a genome whose text breaks the program (e.g. odd quoting)
        raise GenomeError(f"rendered h{n}.py does not parse: {exc.msg} (line {exc.lineno})") from None
    return source


def render_h1(genome: TowerGenome) -> str:
    """The task level."""
    fixation = genome.experience.get("fixation", ())
    policy = fill(H1_POLICY, fixation=experience_heredoc(fixation)) if fixation else ""
    graph = "\n".join(f"    {json.dumps(node, sort_keys=True, separators=(',', ':'))}," for node in genome.nodes)
    return fill(H1_TEMPLATE, topk=genome.topk,
                max_iterations=genome.max_iterations, chunk=genome.chunk, settle=genome.settle_timeout,
                decision=experience_heredoc(genome.experience["decision"]),
                command=experience_heredoc(genome.experience["command"]),
                policy=policy, look=H1_LOOK if fixation else "", graph=graph)


def kernel_template(genome: TowerGenome) -> str:
    """The kernel's `%`-template: every level n >= 2 is it filled with n (WRITER_MAIN holds no '%')."""
    return fill(KERNEL_TEMPLATE, mode=genome.typing_mode, chunk=genome.chunk, settle=genome.settle_timeout,
                child_timeout=genome.child_timeout) + WRITER_MAIN


# --------------------------------------------------------------------------------------
# The expert content source: the writer looks at its screen and asks its expert for the
# child's next line, one line at a time (see `ft.WriteGenerated`). What it will see is
# predicted offline by driving the same typing machine on a model of its screen.
# --------------------------------------------------------------------------------------
SCREEN_WIDTH, SCREEN_HEIGHT = 100, 30  # the sandbox's pane size (what the writer's screen shows)

EXPERT_TEMPLATE = '''#!/usr/bin/env python3
"""h{level}: an expert writer. It looks at its own screen, asks its expert for the next line of
h{child}.py, types that line and looks again; then it runs h{child}.py."""
import sys

from harness_tower import ft

LEVEL = {level}
MODE, CHUNK, SETTLE, CHILD_TIMEOUT = {mode!r}, {chunk}, {settle}, {child_timeout}
TOPK, RADIUS, MAX_LINES, MAX_BYTES = {topk}, {radius}, {max_lines}, {max_bytes}
BACKEND = {backend!r}
BACKEND_CONFIG = {backend_config!r}

# Experience: where to look (screen state -> fixation point "DT ROW COL"); None: the cursor.
FIXATION = {fixation}

# Experience: what the screen shows around the fixation point -> the next line to type.
SOURCE = ft.Experience.parse({source})


def main():
    session, child = f"h{{LEVEL}}_writer", f"h{{LEVEL - 1}}.py"
    term = ft.Terminal()
    term.open(session)
    look = ft.ft_fixation(ft.ft_tmux_capture_pane(session), RADIUS, policy=FIXATION)
    line = ft.ft_expert(look, SOURCE, TOPK, BACKEND, name="source", config=BACKEND_CONFIG)
    write = ft.ft_write_generated(session, line, child, MODE, CHUNK, SETTLE, MAX_LINES, MAX_BYTES)
    return ft.write_then_run(term, session, write, child, CHUNK, SETTLE, CHILD_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
'''


def render_expert(genome: TowerGenome, n: int) -> str:
    """The expert writer of level n; its SOURCE experience holds, for every line of the child
    (as this genome renders it), what the writer's screen shows just before typing it, then
    the genome's own `source` rows (more experience; few-shot examples for model backends)."""
    child = render(genome, n - 1)
    fixation = genome.experience.get("fixation", ())
    radius, rows = source_rows(child, f"h{n - 1}.py", genome.typing_mode, genome.source_radius, fixation)
    rows = rows + tuple(genome.experience.get("source", ()))
    return fill(
        EXPERT_TEMPLATE, level=n, child=n - 1, mode=genome.typing_mode, chunk=genome.chunk,
        settle=genome.settle_timeout, child_timeout=genome.child_timeout, topk=genome.topk, radius=radius,
        max_lines=genome.max_lines,
        max_bytes=genome.max_bytes, backend=genome.backend, backend_config=dict(sorted(genome.backend_config.items())),
        fixation=f"ft.Experience.parse({experience_heredoc(fixation)})" if fixation else "None",
        source=experience_heredoc(rows))


class ScreenModel:
    """What the writer's pane shows while `ft.WriteGenerated` types: logical lines wrapped at
    the pane width, the last `height` rows visible, the cursor on the last row."""

    def __init__(self, width: int = SCREEN_WIDTH, height: int = SCREEN_HEIGHT) -> None:
        self.width, self.height = width, height
        self.lines = [PROMPT]
        self.index = 0

    def press(self, key: Key) -> None:
        """Text lands at the cursor; an Enter starts a row showing what the key says it shows;
        another key (C-d: `cat` ends) shows that at the cursor."""
        if key.kind == "text":
            self.lines[-1] += key.keys
        elif key.keys == "Enter":
            self.lines.append(key.shows)
        else:
            self.lines[-1] += key.shows

    def screen(self) -> Screen:
        rows: list[str] = []
        for line in self.lines:
            rows.extend(line[i:i + self.width] for i in range(0, max(len(line), 1), self.width))
        visible = rows[-self.height:]
        self.index += 1
        cursor = (len(visible[-1]), len(visible) - 1)
        text = "\n".join(row.rstrip() for row in visible + [""] * (self.height - len(visible)))
        return Screen(text, cursor, self.index)


def writer_contexts(child: str, filename: str, mode: str, radius: int,
                    fixation: tuple[ExperienceEntry, ...] = ()) -> list[tuple[str, str]]:
    """(what the fixation op sees, the line typed next) for every line of `child`, then END_MARK.

    The expert writer offline: the typing machine `ft.WriteGenerated` drives (`ft.generated`,
    without the bounds on a rambling source: the child is known) pressing its keys on a
    `ScreenModel`, its lines the child's, each asked for after looking at the model's screen.
    """
    policy = Experience([(e.query, e.key, e.value, e.weight) for e in fixation]) if fixation else None
    look = Fixation(Const("", SCREEN), radius, policy=policy)
    model = ScreenModel()
    lines = iter(child.splitlines() + [END_MARK])
    pairs: list[tuple[str, str]] = []

    def next_line() -> str:
        context = look.look(model.screen())
        line = next(lines, END_MARK)
        pairs.append((context, line))
        return line

    run(generated(filename, mode), model.press, next_line)
    return pairs


def source_rows(child: str, filename: str, mode: str, radius: int,
                fixation: tuple[ExperienceEntry, ...] = ()) -> tuple[int, tuple[ExperienceEntry, ...]]:
    """The writer's SOURCE rows for typing `child`, and the radius they need: the smallest one
    from `radius` up at which no screen context is followed by two different lines."""
    for r in range(radius, 13):
        pairs = writer_contexts(child, filename, mode, r, fixation)
        seen: dict[str, str] = {}
        if all(seen.setdefault(ctx, line) == line for ctx, line in pairs):
            break
    rows, kept = [], set()
    for i, (ctx, line) in enumerate(pairs):
        if ctx not in kept:  # a context seen before is followed by the same line: one row holds both
            kept.add(ctx)
            rows.append(ExperienceEntry(ctx, f"{filename} line {i + 1}", line))
    return r, tuple(rows)
