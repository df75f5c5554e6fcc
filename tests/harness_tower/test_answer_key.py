"""A suite's checks and reference solutions are the answer key: no level and no pane may read
them. A tower that looked up the reference solution of a held-out task would score on
validation and test without knowing anything."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness_tower.tasks import builtin_suite_path, load_suite
from tests.harness_tower.cheats import LEVELS, prelude, run_cheat

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

SUITE = builtin_suite_path("shell")
HELD_OUT = [load_suite("shell").task(t) for t in ("python-factorial", "text-count-words")]  # validation

# The sealed task level opens the suite, finds each instruction and types its reference solution.
READS_THE_KEY = prelude("h1_writer") + f"""
text = open({str(SUITE)!r}).read()
while True:
    task = t.task()
    if task is None:
        break
    block = text.split('instruction: ' + task['instruction'], 1)[1]
    line(block.split('solution: [', 1)[1].split(']\\n', 1)[0].strip().strip('"'))
    t.wait_output(S, 2.0)
    t.task_done()
"""

# The task's terminal is asked to show the suite file.
PANE_READS_THE_KEY = prelude("h1_writer") + f"""
t.task()
line('grep -c solution: {SUITE}')
t.wait_output(S, 2.0)
t.task_done()
"""


def test_the_built_in_suite_lies_outside_the_op_library() -> None:
    import harness_tower

    assert SUITE.is_file() and Path(harness_tower.__file__).parent not in SUITE.parents


@pytest.mark.parametrize("isolation", LEVELS)
def test_a_level_reading_the_answer_key_is_refused(short_tmp: Path, isolation: str) -> None:
    result = run_cheat(READS_THE_KEY, 1, short_tmp / "o", isolation, tasks=HELD_OUT)
    assert result.status == "invalid" and "runtime audit" in (result.error or ""), result.error
    assert not any(t.passed for t in result.tasks)


def test_a_pane_cannot_read_the_answer_key_under_bwrap(short_tmp: Path) -> None:
    result = run_cheat(PANE_READS_THE_KEY, 1, short_tmp / "o", "bwrap", tasks=HELD_OUT[:1])
    assert result.trajectory is not None
    screen = sorted((result.trajectory / ".captures" / "h1_writer").glob("*.txt"))[-1].read_text()
    assert "No such file or directory" in screen and "\n51\n" not in screen


@pytest.mark.xfail(strict=True, reason="hole: under `process` pane shells share the host's files: a suite file "
                   "readable by others (a checkout's default mode) is readable by a typed command")
def test_a_pane_cannot_read_the_answer_key_under_process(short_tmp: Path) -> None:
    result = run_cheat(PANE_READS_THE_KEY, 1, short_tmp / "o", "process", tasks=HELD_OUT[:1])
    assert result.trajectory is not None
    screen = sorted((result.trajectory / ".captures" / "h1_writer").glob("*.txt"))[-1].read_text()
    assert "No such file or directory" in screen or "Permission denied" in screen
