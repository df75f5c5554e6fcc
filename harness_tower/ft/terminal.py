"""A level's terminal: a thin client of the recorder, which owns tmux and git.

A harness never touches tmux itself: every key it sends and every screen it reads is a
JSON-lines request over the one connection the recorder started it with, so that the
recorder can check, record and commit each of them.
"""
from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from harness_tower.errors import TowerError

PROMPT = "$ "  # the sandbox shell's prompt (PS1)
MAX_TEXT = 16  # the recorder refuses a text send longer than this


def chunks(text: str, size: int) -> Iterator[str]:
    """`text` as sends of at most `size` characters (none for empty text)."""
    return (text[i:i + size] for i in range(0, len(text), size))


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
        except TimeoutError:
            raise TowerError(f"recorder did not answer {request.get('op')!r} in time") from None
        if not line:
            raise TowerError("the recorder closed the connection")
        reply: dict[str, Any] = json.loads(line)  # the recorder always answers an object
        if not reply.get("ok"):
            raise TowerError(reply.get("error", "recorder error"))
        return reply


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

    def task(self) -> dict[str, Any] | None:
        """The next task of the evaluation's sample (`{"instruction", "index", "count"}`; the
        task terminal is opened afresh in its directory, the instruction shown above the
        prompt), or None when there are no more. Only the task level may ask."""
        reply = self.call(op="task")
        return None if reply.get("done") else reply

    def task_done(self) -> None:
        """Say the current task is finished (it is checked then; the verdict is not told)."""
        self.call(op="task_done")

    def wait_output(self, session: str, timeout: float) -> bool:
        return bool(self.call(op="wait_output", session=session, timeout=timeout)["changed"])


class Screen:
    """One pane capture: its lines, cursor and index in the session's capture sequence."""

    __slots__ = ("cursor", "index", "text")

    def __init__(self, text: str, cursor: tuple[int, int], index: int) -> None:
        self.text, self.cursor, self.index = text, cursor, index

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")
