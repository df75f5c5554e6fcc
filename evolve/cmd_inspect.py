"""`evolve status [RUN]` and `evolve fronts RUN`: read a run's store.

While a run is going its driver holds the store; these read the copy it publishes after
each committed generation (see `evolve.store`), say so in one line ("live: generation N"),
and `status` adds what the driver's `status.json` says of the generation under way.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evolve.runs import add_runs_option, say_live


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="a run's progress, or every run under --runs",
                       description="Show a run's status (or list the runs under --runs).")
    p.add_argument("run_dir", nargs="?", metavar="RUN", help="a run directory or id (default: list runs under --runs)")
    add_runs_option(p)
    p.set_defaults(handler=status)

    p = sub.add_parser("fronts", help="print a run's Pareto front",
                       description="Print the non-dominated feasible individuals of a run.")
    p.add_argument("run_dir", metavar="RUN", help="a run directory (or a run id under --runs)")
    add_runs_option(p)
    p.add_argument("--generation", type=int, help="that generation's front (default: the latest)")
    p.add_argument("--species", help="only individuals of this species (runs with several species)")
    p.add_argument("--island", type=int, metavar="K", help="island K's own front (runs with islands)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="table (default), JSON lines, or CSV with one column per objective")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.set_defaults(handler=fronts)


def _live(run_dir: Path) -> dict[str, object] | None:
    from evolve.loop import STATUS_FILE

    try:
        return dict(json.loads((run_dir / STATUS_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from evolve.budget import live_spend
    from evolve.errors import EvolveError
    from evolve.runs import find_run
    from evolve.store import STORE_FILE, Store
    from evolve.tables import fmt, status_table

    # run ids are never cut: a pipe or a log gets the table at its natural width
    out = Console() if sys.stdout.isatty() else Console(width=1000)
    if args.run_dir is None:
        root = Path(args.runs)
        if not root.is_dir():
            raise EvolveError(f"{root}: no runs directory (start one with `evolve run CONFIG --runs {root}`)")
        table = Table(title=f"runs under {root}", title_justify="left")
        dirs = sorted(p for p in root.iterdir() if (p / STORE_FILE).exists())
        # a terminal narrower than an id folds it onto a second line, never cuts it
        table.add_column("run", overflow="fold")
        for col in ("status", "generation", "hypervolume", "updated"):
            table.add_column(col)
        for d in dirs:
            live = _live(d) or {}
            try:
                with Store.open(d, read_only=True) as store:
                    info = store.run()
                    last = store.last_generation(info["run_id"])
                    hv = store.query("SELECT hypervolume, committed_at FROM generations "
                                     "ORDER BY generation DESC LIMIT 1")
                    state = info["status"] + (f" (live, PID {live.get('pid', '?')})" if store.live else "")
                updated = max([info["updated_at"]] + ([hv[0][1]] if hv else []))
                table.add_row(d.name, state, f"{0 if last is None else last + 1}/{info['generations']}",
                              fmt(hv[0][0] if hv else None), f"{updated:%Y-%m-%d %H:%M:%S}")
            except EvolveError:  # held, with no copy published yet: the driver's own snapshot
                table.add_row(d.name, f"{live.get('state', 'starting')} (live, PID {live.get('pid', '?')})",
                              f"{live.get('generation', '?')}/{live.get('generations', '?')}",
                              fmt(live.get("hypervolume")), str(live.get("updated_at", "-")))
        out.print(table)
        return 0

    run_dir = find_run(Path(args.runs), args.run_dir)
    snapshot = _live(run_dir)
    try:
        with Store.open(run_dir, read_only=True) as store:
            out.print(status_table(store))
            note = store.live_note()
        if note:
            out.print(note, markup=False)
            if snapshot and snapshot.get("state") == "running":
                out.print(_under_way(snapshot), markup=False)
        return 0
    except EvolveError as exc:
        if snapshot is None or "locked" not in str(exc):
            raise
        live = snapshot
    table = Table(title=f"run {live.get('run_id')} (live: its driver, PID {live.get('pid')}, holds the store)",
                  title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value")
    table.add_row("state", str(live.get("state")))
    table.add_row("species", str(live.get("species")))
    table.add_row("generations", f"{live.get('generation')} of {live.get('generations')} done")
    if "evaluated" in live:
        table.add_row("this generation",
                      f"{live['evaluated']} of {live.get('size')} evaluated, {live.get('failed', 0)} failed")
    table.add_row("hypervolume", fmt(live.get("hypervolume")))
    table.add_row("spend", live_spend(live))
    if "validation" in live:
        table.add_row("validation split", f"best pass rate {fmt(live['validation'])}")
    table.add_row("updated", str(live.get("updated_at")))
    out.print(table)
    return 0


def _under_way(live: dict[str, object]) -> str:
    """The driver's word (status.json) on the generation it is working on."""
    now = f"now: generation {live.get('generation')} under way"
    if "evaluated" in live:
        now += f", {live['evaluated']} of {live.get('size')} evaluated, {live.get('failed', 0)} failed"
    return now + f" (driver PID {live.get('pid')}, {live.get('updated_at')})"


def fronts(args: argparse.Namespace) -> int:
    import csv

    from rich.console import Console

    from evolve.errors import EvolveError
    from evolve.runs import find_run
    from evolve.store import Store
    from evolve.tables import finite, front_rows, front_table

    fmt = "json" if args.json else args.format
    run_dir = find_run(Path(args.runs), args.run_dir)
    with Store.open(run_dir, read_only=True) as store:
        say_live(store)
        run = store.run()
        known = [r[0] for r in store.query("SELECT DISTINCT species FROM individuals ORDER BY 1")]
        if args.species is not None and args.species not in known:
            raise EvolveError(f"run {run['run_id']} has no species {args.species!r} (species: {', '.join(known)})")
        if args.generation is not None:
            last = store.last_generation(run["run_id"])
            if last is None or not 0 <= args.generation <= last:
                raise EvolveError(f"run {run['run_id']} has no generation {args.generation} "
                                  f"(generations: 0..{last if last is not None else '-'})")
        count = int((run["config"].get("islands") or {}).get("count", 1))
        if args.island is not None and not 0 <= args.island < count:
            raise EvolveError(f"run {run['run_id']} has no island {args.island} "
                              + (f"(islands: 0..{count - 1})" if count > 1 else "(it evolves one population)"))
        rows = front_rows(store, args.generation, of=args.species, island=args.island)
        names = {p["species"]: [o["metric"] for o in p["objectives"]] for p in store.species()}
        # objective vector -> the first individual there: copies say whose point they share
        first_at: dict[tuple[object, ...], str] = {}
        for r in rows:
            r["same_as"] = first_at.setdefault(tuple(r["objectives"]), r["individual_id"])
            if r["same_as"] == r["individual_id"]:
                r["same_as"] = None
        if fmt == "json":
            for r in rows:
                print(json.dumps(finite({"species": r["species"], "individual_id": r["individual_id"],
                                  "generation": r["generation"],
                                  "objectives": dict(zip(names.get(r["species"], []), r["objectives"])),
                                  "crowding": r["crowding"], "trajectory": r["trajectory"],
                                  "validation": r["validation"], "test": r["test"], "same_as": r["same_as"],
                                  "genome": json.loads(r["genome"])}), allow_nan=False))
        elif fmt == "csv":  # one column per objective of every species shown; blank where not its own
            shown = [n for sp, ns in names.items() if any(r["species"] == sp for r in rows) for n in ns]
            columns = list(dict.fromkeys(shown))
            out = csv.writer(sys.stdout)
            out.writerow(["species", "individual_id", "generation", *columns, "crowding", "same_as", "trajectory",
                          "genome"])
            for r in rows:
                mine = dict(zip(names.get(r["species"], []), r["objectives"]))
                out.writerow([r["species"], r["individual_id"], r["generation"], *[mine.get(c, "") for c in columns],
                              r["crowding"], r["same_as"] or "", r["trajectory"], r["genome"]])
        else:
            Console().print(front_table(store, args.generation, of=args.species, island=args.island))
    return 0

