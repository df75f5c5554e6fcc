"""`python3` in a writer pane: run a recorded file as the level below, sealed.

A writer types `python3 h1.py` into its own terminal. This launcher (first on the pane's
PATH) asks the recorder's gateway to start that file as the next level down; the gateway
decides from the kernel's view of this process which pane it runs in, checks that the
file is exactly what the trajectory recorded, and starts it sealed. The launcher relays
what the level prints and exits with its status, as if the interpreter had run here.

Anything else (`python3 -c ...`, an interactive interpreter) is the real interpreter:
an ordinary command typed into a pane. Standard library only.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # C-c in the pane ends the level, quietly
    args = sys.argv[1:]
    if not args or args[0].startswith("-") or not args[0].endswith(".py"):
        os.execv(sys.executable, [sys.executable, *args])
    path = os.environ.get("TOWER_RECORDER", "")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        _fail(f"cannot reach the recorder: {exc.strerror}")
    stream = sock.makefile("rwb")
    stream.write(json.dumps({"op": "spawn", "argv": args}).encode() + b"\n")
    stream.flush()
    out = sys.stdout.buffer
    for line in stream:
        message = json.loads(line)
        if "out" in message:
            out.write(str(message["out"]).encode("utf-8", "replace"))
            out.flush()
        elif "exit" in message:
            code = message["exit"]
            sys.exit(code if isinstance(code, int) and code >= 0 else 1)
        elif "error" in message:
            _fail(str(message["error"]))
    _fail("the recorder closed the connection")


def _fail(message: str) -> None:
    print(f"python3: {message}", file=sys.stderr)
    sys.exit(126)
