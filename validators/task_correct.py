"""`task_correct`: did H1's terminal end up showing the task's expected output? 1 or 0.

The last capture of `h1_writer` (highest `.captures/h1_writer/{seq}.txt` of the final
commit) must contain a line equal, after stripping trailing whitespace, to the manifest's
`task.expected` (a multi-line expectation must appear as consecutive lines). Lines that
start with the manifest's `prompt` are the echoed command line and do not count. 0 when
there is no such session, capture or manifest.

>>> last_capture_matches("$ echo hello world\\nhello world\\n$ ", "hello world", "$ ", "echo hello world")
True
>>> last_capture_matches("$ echo hello world\\n$ ", "hello world", "$ ", "echo hello world")
False
"""
from __future__ import annotations

import re
import sys

from validators.cli import metric_main
from validators.trajectory import Trajectory

SESSION = "h1_writer"
_CAPTURE = re.compile(r"\.captures/([^/]+)/([0-9]+)\.txt")


def last_capture(traj: Trajectory, session: str = SESSION) -> str | None:
    """Text of the session's highest-numbered capture in the final commit, if any."""
    best: tuple[int, str] | None = None
    for path, sha in traj.final_tree.items():
        match = _CAPTURE.fullmatch(path)
        if match and match.group(1) == session:
            seq = int(match.group(2))
            if best is None or seq > best[0]:
                best = (seq, sha)
    return None if best is None else traj.text(best[1])


def last_capture_matches(capture: str, expected: str, prompt: str, command: str) -> bool:
    """Whether `capture` shows `expected` on its own line(s), echoed command lines excluded."""
    want = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    lines = []
    for line in capture.splitlines():
        echoed = line.startswith(prompt) if prompt else line.rstrip() == command.rstrip()
        lines.append(None if echoed else line.rstrip())
    k = len(want)
    return any(lines[i:i + k] == want for i in range(len(lines) - k + 1))


def compute(traj: Trajectory) -> int:
    """1 when H1's last capture shows the expected output, else 0."""
    task = (traj.manifest or {}).get("task")
    if not isinstance(task, dict) or not isinstance(task.get("expected"), str):
        return 0
    capture = last_capture(traj)
    if capture is None:
        return 0
    prompt = (traj.manifest or {}).get("prompt")
    command = task.get("command")
    return int(last_capture_matches(capture, task["expected"],
                                    prompt if isinstance(prompt, str) else "",
                                    command if isinstance(command, str) else ""))


if __name__ == "__main__":
    sys.exit(metric_main("task_correct", compute, per_session=False))
