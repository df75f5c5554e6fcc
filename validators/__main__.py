"""`python -m validators REPO`: print every metric of a trajectory as JSON."""
from __future__ import annotations

import argparse
import json
import sys

from validators.cli import guarded
from validators.scorecard import score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validators",
                                     description="Score a trajectory repository (JSON).")
    parser.add_argument("repo", metavar="REPO", help="trajectory git repository")
    args = parser.parse_args(argv)

    def action() -> int:
        print(json.dumps(score(args.repo), indent=2, allow_nan=True))
        return 0

    return guarded(action)


if __name__ == "__main__":
    sys.exit(main())
