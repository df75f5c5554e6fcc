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

from harness_tower.errors import GenomeError
from harness_tower.ft import heredoc
from harness_tower.genome import ExperienceEntry, TowerGenome

H1_TEMPLATE = '''#!/usr/bin/env python3
"""h1: drives its terminal h1_writer to do the task; the screen's answer is H0."""
import sys

from harness_tower import ft

SESSION, EXPECTED = "h1_writer", {expected}
TOPK, MAX_ITERATIONS, CHUNK, SETTLE = {topk}, {max_iterations}, {chunk}, {settle}

# Experience: terminal observation -> what to do.
DECISION = ft.Experience.parse({decision})

# Experience: what to do -> the exact keys.
COMMAND = ft.Experience.parse({command})


def main():
    term = ft.Terminal()
    term.open(SESSION)
    screen = ft.ft_tmux_capture_pane(SESSION)
    decide = ft.ft_expert(ft.ft_fixation(screen), DECISION, TOPK, name="decision")
    keys = ft.ft_expert(decide, COMMAND, TOPK, name="command")
    act = ft.ft_switch(decide, {{
        "text": ft.ft_tmux_send_text(SESSION, keys, CHUNK, SETTLE),
        "ctrl": ft.ft_tmux_send_ctrl(SESSION, keys, SETTLE),
    }})
    done = ft.ft_screen_has_line(ft.ft_tmux_capture_pane(SESSION), EXPECTED)
    return ft.finish(SESSION, ft.ft_recurrent(act, done, MAX_ITERATIONS).run(ft.Context(term)))


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
    run = ft.ft_sequential(
        write,
        ft.ft_tmux_send_text(session, ft.ft_const("python3 " + child), CHUNK, SETTLE),
        ft.ft_tmux_send_ctrl(session, ft.ft_const("Enter"), SETTLE),
    )
    status = run.run(ft.Context(term))
    if status == "ok":
        status = ft.wait_child(term, session, child, CHILD_TIMEOUT)
    return ft.finish(session, status)


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
    import json
    return json.dumps(value)


def render(genome: TowerGenome, n: int) -> str:
    """The source of `h{n}.py` for this genome (n >= 1); it always parses."""
    if not isinstance(n, int) or n < 1:
        raise GenomeError(f"level must be an integer >= 1, got {n!r}")
    if n == 1:
        source = H1_TEMPLATE.format(
            expected=repr(genome.task_expected), topk=genome.topk, max_iterations=genome.max_iterations,
            chunk=genome.chunk, settle=genome.settle_timeout,
            decision=experience_heredoc(genome.experience["decision"]),
            command=experience_heredoc(genome.experience["command"]))
    elif genome.content_source == "literal":
        source = LITERAL_TEMPLATE.format(
            level=n, child=n - 1, mode=genome.typing_mode, chunk=genome.chunk, settle=genome.settle_timeout,
            child_timeout=genome.child_timeout, source=heredoc(render(genome, n - 1))) + WRITER_MAIN
    elif genome.content_source == "kernel":
        kernel = kernel_template(genome)
        source = kernel % {"level": n, "kernel": heredoc(kernel), "h1": heredoc(render(genome, 1))}
    else:
        raise GenomeError(f"content source {genome.content_source!r} cannot be rendered offline yet")
    try:
        ast.parse(source)
    except SyntaxError as exc:  # a genome whose text breaks the program (e.g. odd quoting)
        raise GenomeError(f"rendered h{n}.py does not parse: {exc.msg} (line {exc.lineno})") from None
    return source


def kernel_template(genome: TowerGenome) -> str:
    return KERNEL_TEMPLATE.format(mode=genome.typing_mode, chunk=genome.chunk, settle=genome.settle_timeout,
                                  child_timeout=genome.child_timeout) + WRITER_MAIN
