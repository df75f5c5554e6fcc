"""`evolve ui [RUN…] [--port P] [--runs DIR]`: the local web dashboard (see `evolve.ui`)."""
from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path

from evolve.errors import EvolveError

DEFAULT_RUNS = "runs"
DEFAULT_PORT = 8765


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ui", help="a local web dashboard of runs (fronts, lineage, replay; follows live runs)",
                       description="Serve a dashboard of runs on this machine; it needs no internet.")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run directories or run ids under --runs (default: every run under --runs)")
    p.add_argument("--runs", dest="root", default=DEFAULT_RUNS, metavar="DIR",
                   help=f"where runs live (default: {DEFAULT_RUNS})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to serve on (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)")
    p.set_defaults(handler=run_ui)


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything starts: a port in use is one clear line."""
    if not 0 <= port <= 65535:
        raise EvolveError(f"--port {port}: not a port number (0..65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EvolveError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise EvolveError(f"port {port} on {host} is in use; pick another with --port (0 picks a free one)") \
                from None
        raise EvolveError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
    return sock


def run_ui(args: argparse.Namespace) -> int:
    import uvicorn

    from evolve.runs import find_run
    from evolve.ui.server import make_app
    from evolve.ui.views import RunDirs

    root = Path(args.root)
    explicit = tuple(find_run(root, ref) for ref in args.runs)
    if not explicit and not root.is_dir():
        raise EvolveError(f"{root}: no runs directory (name runs as RUN arguments, or point --runs at a folder)")
    dirs = RunDirs(explicit, root)
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"{len(explicit)} run(s)" if explicit else f"the runs under {root}"
    print(f"evolve ui: serving {shown} at http://{'[' + host + ']' if ':' in host else host}:{port}/ "
          "(Ctrl-C stops it)", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(make_app(dirs), log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=2))
    server.run(sockets=[sock])
    return 0
