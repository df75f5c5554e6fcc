"""The command line shared by every metric: `python -m validators.<metric> REPO [SESSION]`.

Values print as JSON (`Infinity` for inf, `null` for an undefined value); per-level
dictionaries print with `h{n}` keys. A bad path, an empty repository, a repository that is not
a trajectory (no root `init` with a manifest) or an unknown session prints one
`validators: error: ...` line on stderr and exits 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import git

from validators.errors import ValidatorError
from validators.trajectory import Trajectory

EXIT_USAGE = 2


def fail(message: str) -> int:
    """Print one error line on stderr; return the exit status for user errors."""
    print(f"validators: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def to_json(value: Any) -> str:
    """JSON text of a metric value; per-level dicts `{2: x}` become `{"h2": x}`."""
    if isinstance(value, dict) and all(isinstance(k, int) for k in value):
        value = {f"h{k}": v for k, v in value.items()}
    return json.dumps(value, allow_nan=True)


def guarded(action: Callable[[], int]) -> int:
    """Run `action`, turning user-facing failures into one line and exit status 2."""
    try:
        return action()
    except ValidatorError as exc:
        return fail(str(exc))
    except (git.GitError, OSError) as exc:  # e.g. a corrupt object store mid-read
        lines = str(exc).strip().splitlines() or [repr(exc)]
        return fail(f"{type(exc).__name__}: {lines[0]}")


def metric_main(name: str, compute: Callable[..., Any], *, per_session: bool,
                argv: list[str] | None = None) -> int:
    """Entry point of `python -m validators.<name>`; returns the exit status."""
    parser = argparse.ArgumentParser(prog=f"python -m validators.{name}",
                                     description=(compute.__doc__ or "").split("\n")[0])
    parser.add_argument("repo", metavar="REPO", help="trajectory git repository")
    if per_session:
        parser.add_argument("session", metavar="SESSION", help="session name (or its label, h2)")
    args = parser.parse_args(argv)

    def action() -> int:
        with Trajectory.open(args.repo) as traj:
            traj.require_trajectory()
            value = compute(traj, args.session) if per_session else compute(traj)
        print(to_json(value))
        return 0

    return guarded(action)
