"""`evolve replay RUN IND` and `evolve trajectory RUN IND --checkout DIR`: after a run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evolve.errors import EvolveError
from evolve.replay import MAX_IDLE, MIN_FRAME
from evolve.runs import add_runs_option


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="play an individual's trajectory keystroke by keystroke")
    p.add_argument("run", metavar="RUN", help="a run directory (or a run id under --runs)")
    p.add_argument("individual", metavar="IND", help="an individual id (or a unique prefix of one)")
    p.add_argument("--session", help="one level's session, e.g. h2_writer or h2 (default: all, in order)")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed factor (default 1)")
    p.add_argument("--max-idle", type=float, default=MAX_IDLE, metavar="SECONDS",
                   help=f"a longer pause plays this long, like asciinema play -i (default {MAX_IDLE:g})")
    p.add_argument("--min-frame", type=float, default=MIN_FRAME, metavar="SECONDS",
                   help=f"each frame shows at least this long at speed 1 (default {MIN_FRAME:g}; 0: as recorded)")
    p.add_argument("--from", dest="start", type=int, default=1, metavar="SEQ",
                   help="start at this sequence number of the session")
    p.add_argument("--export", metavar="OUT.cast", help="write an asciicast v2 file instead of playing")
    add_runs_option(p)
    p.set_defaults(handler=run_replay)
    t = sub.add_parser("trajectory", help="a plain git clone of an individual's trajectory")
    t.add_argument("run", metavar="RUN")
    t.add_argument("individual", metavar="IND")
    t.add_argument("--checkout", required=True, metavar="DIR", help="where to clone it (new or empty)")
    add_runs_option(t)
    t.set_defaults(handler=run_trajectory)


def trajectory_of(runs_root: str, run: str, individual: str) -> tuple[str, Path]:
    """(individual id, trajectory repo path) from the run's store; clear errors otherwise."""
    from evolve.runs import find_run, say_live
    from evolve.store import Store

    run_dir = find_run(Path(runs_root), run)
    with Store.open(run_dir, read_only=True) as store:
        say_live(store)
        rows = store.query("SELECT i.individual_id, e.status, e.trajectory, e.error FROM individuals i "
                           "LEFT JOIN evaluations e USING (run_id, individual_id) "
                           "WHERE i.individual_id = ? OR starts_with(i.individual_id, ?) "
                           "ORDER BY i.individual_id = ? DESC", [individual, individual, individual])
    if not rows:
        raise EvolveError(f"run {run}: no individual {individual!r} (see `evolve fronts {run}`)")
    if len(rows) > 1 and rows[0][0] != individual:
        raise EvolveError(f"run {run}: {individual!r} is ambiguous ({', '.join(r[0] for r in rows[:5])} ...)")
    ind, status, rel, error = rows[0]
    if status is None:
        raise EvolveError(f"individual {ind} has not been evaluated yet")
    if not rel:
        raise EvolveError(f"individual {ind} has no trajectory (evaluation {status}: {error or 'no reason'})")
    path = run_dir / rel
    if not (path / ".git").exists():
        raise EvolveError(f"individual {ind}: trajectory {path} is missing")
    return ind, path


def run_replay(args: argparse.Namespace) -> int:
    from evolve.replay import Keys, asciicast, load_frames, plain, play

    if not args.speed > 0:
        raise EvolveError(f"--speed must be positive (got {args.speed:g})")
    if not args.max_idle > 0:
        raise EvolveError(f"--max-idle must be positive (got {args.max_idle:g})")
    if not 0 <= args.min_frame <= args.max_idle:
        raise EvolveError(f"--min-frame must be between 0 and --max-idle ({args.max_idle:g}), got {args.min_frame:g}")
    ind, path = trajectory_of(args.runs, args.run, args.individual)
    frames = load_frames(path, args.session, args.start)
    if not frames:
        raise EvolveError(f"individual {ind}: nothing to replay from sequence {args.start}")
    if args.export:
        cast = asciicast(frames, args.speed, f"{args.run} {ind}", args.max_idle, args.min_frame)
        Path(args.export).write_text(cast, encoding="utf-8")
        print(f"wrote {len(frames)} frames to {args.export}", file=sys.stderr)
        return 0
    if not (sys.stdin.isatty() and sys.stdout.isatty()):  # a pipe or a log: the frames, plainly
        plain(frames)
        return 0
    keys = Keys(sys.stdin)
    try:
        play(frames, keys, speed=args.speed, max_idle=args.max_idle, min_frame=args.min_frame)
    finally:
        keys.close()
    return 0


def run_trajectory(args: argparse.Namespace) -> int:
    from evolve.replay import checkout

    ind, path = trajectory_of(args.runs, args.run, args.individual)
    checkout(path, Path(args.checkout))
    print(f"{ind}: cloned {path} into {args.checkout}", file=sys.stderr)
    return 0
