"""`evolve sql RUN [QUERY]`: SQL over a run's store, finished or live, read-only.

With a query: its result as a table (DuckDB's own rendering), CSV or JSON lines. Without
one: a prompt reading statements from stdin (each ends with `;`; `.quit` or end of input
stops it). Each statement opens the store afresh, so on a live run every answer is the last
committed generation's (see `evolve.store`), and no lock is held between statements: the
run, or another reader, is never kept waiting by an idle prompt.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from evolve.runs import add_runs_option

if TYPE_CHECKING:
    from duckdb import DuckDBPyRelation

PROMPT = "evolve sql> "
MORE = "        ...> "
QUIT = {".quit", ".exit", "\\q", "quit", "exit"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sql", help="SQL over a run's store (read-only; works while the run writes)",
                       description="Run one SQL query over a run's store, or read queries from stdin "
                                   "(a prompt on a terminal). Tables and views: see the README, \"The store\".")
    p.add_argument("run", metavar="RUN", help="a run directory (or a run id under --runs)")
    p.add_argument("query", nargs="?", metavar="QUERY", help="one SQL statement (default: read statements from stdin)")
    add_runs_option(p)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default), CSV, or JSON lines (one object per row)")
    p.add_argument("--max-rows", type=int, default=40, metavar="N",
                   help="rows a table shows, the first and last halves (default 40; 0: all); CSV and JSON give all")
    p.set_defaults(handler=run_sql)


def run_sql(args: argparse.Namespace) -> int:
    from evolve.errors import EvolveError
    from evolve.runs import find_run

    if args.max_rows < 0:
        raise EvolveError(f"--max-rows must be 0 or more (got {args.max_rows})")
    run_dir = find_run(Path(args.runs), args.run)
    if args.query is not None:
        answer(run_dir, args.query, args.format, args.max_rows, sys.stdout, note=True)
        return 0
    return prompt(run_dir, args.format, args.max_rows)


def answer(run_dir: Path, query: str, fmt: str, max_rows: int, out: TextIO, *, note: bool) -> None:
    """Run one statement on a fresh read-only view of the store and write its result."""
    import duckdb

    from evolve.errors import EvolveError
    from evolve.runs import say_live
    from evolve.store import Store

    with Store.open(run_dir, read_only=True) as store:
        if note:
            say_live(store)
        try:
            rel = store.con.sql(query)
            if rel is None:  # a statement with no result (SET, PRAGMA ...)
                return
            _write(rel, fmt, max_rows, out)
        except duckdb.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EvolveError(f"SQL: {first}") from None


def _write(rel: DuckDBPyRelation, fmt: str, max_rows: int, out: TextIO) -> None:
    if fmt == "table":
        import contextlib

        with contextlib.redirect_stdout(out):  # DuckDB prints through Python's stdout
            rel.show(max_rows=max_rows or 2**31 - 1, max_width=None if out.isatty() else 10_000)
        return
    columns = list(rel.columns)
    rows = rel.fetchall()
    if fmt == "csv":
        import csv

        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(rows)
        return
    from evolve.tables import finite

    for row in rows:  # strict JSON: a non-finite number is null; dates and decimals as text
        out.write(json.dumps(finite(dict(zip(columns, row))), default=str, allow_nan=False) + "\n")


def prompt(run_dir: Path, fmt: str, max_rows: int) -> int:
    """Statements from stdin until `.quit` or its end; an error is one line and the prompt
    goes on. Returns 0, or 2 when stdin was not a terminal and a statement failed (a script
    piped in learns that it failed)."""
    from evolve.store import Store

    tty = sys.stdin.isatty()
    if tty:
        with Store.open(run_dir, read_only=True) as store:
            print(f"run {store.run()['run_id']}: {store.live_note() or 'its store (no run is writing it)'}; "
                  "statements end with ';', .quit leaves", file=sys.stderr)
    failed = False
    pending: list[str] = []
    while True:
        try:
            line = input(MORE if pending else PROMPT) if tty else input()
        except EOFError:
            break
        if not pending and line.strip() in QUIT:
            break
        pending.append(line)
        text = "\n".join(pending).strip()
        if text and not text.endswith(";"):
            continue  # the statement goes on on the next line
        pending.clear()
        if text:
            failed |= not _one(run_dir, text, fmt, max_rows)
    text = "\n".join(pending).strip()
    if text:  # the last statement, without its ';'
        failed |= not _one(run_dir, text, fmt, max_rows)
    if tty:
        print(file=sys.stderr)
    return 2 if failed and not tty else 0


def _one(run_dir: Path, text: str, fmt: str, max_rows: int) -> bool:
    from evolve.errors import EvolveError

    try:
        answer(run_dir, text, fmt, max_rows, sys.stdout, note=False)
    except EvolveError as exc:
        print(f"evolve: error: {exc}", file=sys.stderr)
        return False
    finally:
        sys.stdout.flush()
    return True
