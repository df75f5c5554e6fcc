"""Processes as /proc shows them: the one reader of `/proc/PID/stat` for the recorder (when a
terminal has settled), the gateway (which session a peer belongs to) and the sandbox (what is
still alive at teardown)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeGuard

GONE = (b"Z", b"X")  # zombie or dead: exited, waiting to be reaped


@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of /proc/PID/stat the project reads."""

    pid: int
    comm: bytes  # the command name (up to 15 bytes)
    state: bytes  # R running, S sleeping, D disk wait, Z zombie, ...
    ppid: int
    pgrp: int
    session: int
    tpgid: int  # the foreground process group of its controlling terminal (-1: none)

    @property
    def busy(self) -> bool:
        """Running or runnable, or in uninterruptible I/O: not waiting for anything."""
        return self.state in (b"R", b"D")


def stat(pid: int) -> Stat | None:
    """A process's stat, or None when it has gone (or /proc does not parse)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            head, rest = fh.read().rsplit(b")", 1)  # the name may hold spaces and parentheses
        f = rest.split()
        return Stat(pid, head.split(b"(", 1)[1], f[0], int(f[1]), int(f[2]), int(f[3]), int(f[5]))
    except (OSError, IndexError, ValueError):
        return None


def pids() -> list[int]:
    """Every process id /proc lists now."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def live(found: Stat | None) -> TypeGuard[Stat]:
    """A process that is there and has not exited."""
    return found is not None and found.state not in GONE
