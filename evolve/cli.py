"""The `evolve` command line: one sub-command per module, errors as one clear line."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Each module defines `register(subparsers)`; its parser sets `handler=run(args) -> int`.
# Modules keep heavy imports inside their handlers so that `evolve --help` stays fast.
COMMAND_MODULES = (
    "evolve.cmd_eval",
    "evolve.cmd_run",
    "evolve.cmd_inspect",
    "evolve.cmd_sql",
    "evolve.cmd_test",
    "evolve.cmd_compare",
    "evolve.cmd_replay",
    "evolve.cmd_report",
    "evolve.cmd_expert",
    "evolve.cmd_ui",
    "accordion.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evolve", description="Evolve harness towers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet: skip, the rest still works
                continue
            raise
        module.register(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [FileNotFoundError, NotADirectoryError, PermissionError]
    for mod, cls in (("evolve.errors", "EvolveError"), ("harness_tower.errors", "TowerError"),
                     ("validators.errors", "ValidatorError"), ("accordion.errors", "AccordionError"),
                     ("populations.errors", "SpeciesError")):
        try:
            errors.append(getattr(importlib.import_module(mod), cls))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("evolve: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `evolve fronts ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except _user_errors() as exc:
        print(f"evolve: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the CLI boundary: never a bare traceback
        if os.environ.get("EVOLVE_DEBUG"):
            raise
        print(f"evolve: internal error: {type(exc).__name__}: {exc} (EVOLVE_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
