"""Expert commands: `evolve serve` (a checkpoint as an OpenAI-compatible server),
`evolve capture` (a live tmux session into a trajectory), `evolve harvest` (trajectories
into experience)."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from evolve.errors import EvolveError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve a MicroAccordion checkpoint as an OpenAI-compatible HTTP server")
    p.add_argument("checkpoint", help="accordion checkpoint file (from `evolve accordion train`)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback)")
    p.add_argument("--model-name", help="the model id it answers with (default: the checkpoint's file name)")
    p.add_argument("--api-key", help="require this bearer key (default: none)")
    p.set_defaults(handler=run_serve)

    p = sub.add_parser("capture", help="record a live tmux session into a trajectory repository")
    p.add_argument("--session", required=True, help="the tmux session to record")
    p.add_argument("--out", required=True, help="directory for the trajectory repository (new or empty)")
    p.add_argument("--socket", help="tmux server socket path (default: the user's default server)")
    p.add_argument("--prompt", help="the session's shell prompt (default: what its cursor line shows at start)")
    p.set_defaults(handler=run_capture)

    p = sub.add_parser("harvest", help="turn trajectory repositories into experience entries (JSON)")
    p.add_argument("repos", nargs="+", metavar="REPO", help="trajectory repositories (or evaluation output dirs)")
    p.add_argument("--out", required=True, help="experience JSON file to write")
    p.add_argument("--max-entries", type=int, default=64, help="most entries kept per table (default 64)")
    p.add_argument("--prompt", help="the captured sessions' prompt (default: each capture's manifest)")
    p.add_argument("--tasks-out", metavar="SUITE.yaml",
                   help="also write the harvested tasks as a task suite (needs --instruction)")
    p.add_argument("--instruction", action="append", default=[], metavar="TEXT",
                   help="what a person would have asked for the i-th harvested command (repeatable, in order)")
    p.set_defaults(handler=run_harvest)


def run_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise EvolveError(f"--port must be within 0..65535 (got {args.port})")
    from harness_tower.serve import ModelServer, load_model, make_server

    model = load_model(args.checkpoint)
    name = args.model_name or Path(args.checkpoint).stem
    httpd = make_server(ModelServer(model, name), args.host, args.port, args.api_key)
    host, port = str(httpd.server_address[0]), int(httpd.server_address[1])
    print(f"serving {args.checkpoint} as {name!r} at http://{host}:{port}/v1 (Ctrl-C stops)", flush=True)
    stop = threading.Event()

    def shutdown(*_: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, shutdown)
    thread = threading.Thread(target=httpd.serve_forever, name="serve", daemon=True)
    thread.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        httpd.shutdown()
        httpd.server_close()
    print("serve: stopped", file=sys.stderr)
    return 0


def run_capture(args: argparse.Namespace) -> int:
    from harness_tower.capture import capture_session

    out = Path(args.out)
    print(f"capturing tmux session {args.session!r} into {out} (Ctrl-C stops)", file=sys.stderr, flush=True)
    n, reason = capture_session(args.session, out, args.socket, args.prompt)
    print(f"captured {n} sends of {args.session!r} into {out} ({reason})", file=sys.stderr)
    return 0


def run_harvest(args: argparse.Namespace) -> int:
    from harness_tower.harvest import harvest, write_experience

    data = harvest(args.repos, max_entries=args.max_entries, prompt=args.prompt)
    path = write_experience(data, args.out)
    if args.tasks_out:
        write_suite(data, args.instruction, args.tasks_out)
    sizes = ", ".join(f"{len(rows)} {name}" for name, rows in data["experience"].items())
    print(f"harvested {data['actions']} actions from {len(data['sources'])} trajectories: {sizes} entries, "
          f"{len(data['tasks'])} tasks -> {path}", file=sys.stderr)
    return 0


def write_suite(data: dict[str, object], instructions: list[str], out: str) -> None:
    """The harvested tasks with their instructions as a task suite file, checked on the way out."""
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no type information

    from harness_tower.harvest import task_suite
    from harness_tower.tasks import parse_suite

    if not instructions:
        raise EvolveError("--tasks-out needs an --instruction for each harvested command to keep")
    suite = task_suite(data, instructions, Path(out).stem)
    text = yaml.safe_dump(suite, sort_keys=False, allow_unicode=True)
    parse_suite(text, out)  # a harvested task is a task like any other (one line if not)
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EvolveError(f"--tasks-out {out}: {exc.strerror or exc}") from None
    print(f"{len(suite['tasks'])} harvested task(s) -> {out}", file=sys.stderr)
