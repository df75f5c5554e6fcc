"""`evolve report RUN --out DIR` (plots + HTML) and `evolve export RUN --parquet DIR`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evolve.errors import EvolveError

DEFAULT_RUNS = "runs"
TABLES = ("runs", "run_species", "individuals", "evaluations", "fronts", "generations", "events")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="Pareto plots, hypervolume curve and lineage as PNG + one HTML page")
    p.add_argument("run", metavar="RUN", help="a run directory (or a run id under --runs)")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the report")
    p.add_argument("--individual", metavar="IND", help="whose lineage to draw (default: a front member)")
    p.add_argument("--species", help="which species of a run of several (default: the first)")
    p.add_argument("--runs", default=DEFAULT_RUNS, metavar="DIR", help=f"where runs live (default: {DEFAULT_RUNS})")
    p.set_defaults(handler=run_report)
    e = sub.add_parser("export", help="every table of a run's store as Parquet files")
    e.add_argument("run", metavar="RUN", help="a run directory (or a run id under --runs)")
    e.add_argument("--parquet", required=True, metavar="DIR", help="directory for TABLE.parquet files")
    e.add_argument("--runs", default=DEFAULT_RUNS, metavar="DIR", help=f"where runs live (default: {DEFAULT_RUNS})")
    e.set_defaults(handler=run_export)


def run_report(args: argparse.Namespace) -> int:
    from evolve.report import load_run, write_report
    from evolve.runs import find_run, say_live
    from evolve.store import Store

    run_dir = find_run(Path(args.runs), args.run)
    with Store.open(run_dir, read_only=True) as store:
        say_live(store)
        data = load_run(store, args.individual, args.species)
    if not data.points:
        raise EvolveError(f"run {data.run_id} has no evaluations yet")
    for path in write_report(data, Path(args.out)):
        print(path)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from evolve.runs import find_run, say_live
    from evolve.store import Store

    run_dir = find_run(Path(args.runs), args.run)
    out = Path(args.parquet)
    out.mkdir(parents=True, exist_ok=True)
    with Store.open(run_dir, read_only=True) as store:
        say_live(store)
        present = {r[0] for r in store.query("SELECT table_name FROM information_schema.tables "
                                             "WHERE table_type = 'BASE TABLE'")}
        # the documented tables first, then whatever else the store holds (checkpoints, ...)
        for table in [t for t in TABLES if t in present] + sorted(present - set(TABLES)):
            target = out / f"{table}.parquet"
            store.query(f"COPY (SELECT * FROM {table}) TO '{_sql_path(target)}' (FORMAT parquet)")
            rows = store.query(f"SELECT count(*) FROM {table}")[0][0]
            print(f"{target}  ({rows} rows)", file=sys.stderr)
    return 0


def _sql_path(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")
