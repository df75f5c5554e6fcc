"""`evolve test RUN [IND ...]`: front members (or the individuals named) on the held-out test split.

The test split is never selected on: a run evaluates its front on `validation` as it goes,
and the test split only when asked, here. Results go to the store's `held_out` and
`task_results` tables (split `test`; asking again replaces an individual's earlier result)
and are printed beside each individual's validation result.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from evolve.runs import add_runs_option


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("test", help="evaluate a run's front on the held-out test split",
                       description="Evaluate the final Pareto front of a run (or the individuals named) on "
                                   "the species' test split, store the results and print them.")
    p.add_argument("run_dir", metavar="RUN", help="a run directory (or a run id under --runs)")
    p.add_argument("individuals", nargs="*", metavar="IND", help="individual ids (default: the final front)")
    add_runs_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from evolve.config import parse_config, resolve
    from evolve.errors import EvolveError
    from evolve.held_out import TEST, VALIDATION, summarise
    from evolve.runs import find_run
    from evolve.store import Store
    from evolve.tables import fmt
    from populations.base import EvalItem, HeldOut, Outcome

    run_dir = find_run(Path(args.runs), args.run_dir)
    with Store.open(run_dir) as store:  # a live run holds the store: one line says so
        info = store.run()
        rid = info["run_id"]
        ids = list(dict.fromkeys(args.individuals)) or [
            r[0] for r in store.query("SELECT individual_id FROM pareto_front WHERE run_id = ? ORDER BY 1", [rid])]
        if not ids:
            raise EvolveError(f"run {rid} has no feasible front to test (name individuals)")
        found = {r[0]: r[1:] for r in store.query(
            """SELECT individual_id, species, genome, hash, seed FROM individuals
               WHERE run_id = ? AND list_contains(?, individual_id)""", [rid, ids])}
        missing = [i for i in ids if i not in found]
        if missing:
            raise EvolveError(f"run {rid} has no individual {', '.join(missing)}")
        parts = {p.name: p for p in resolve(parse_config(info["config"])).parts}
        generation = store.last_generation(rid) or 0
        held, tasks = [], []
        for ind in ids:
            species_name, genome_json, hash_, seed = found[ind]
            part = parts[species_name]
            plan = part.species.held_out(TEST)
            if not plan:
                raise EvolveError(f"species {species_name} has no {TEST} split")
            genome = part.species.from_data(json.loads(genome_json))
            items = [EvalItem(f"{ind}.{TEST}{j}", genome, hash_, int(seed), h.context) for j, h in enumerate(plan)]
            start = time.monotonic()
            # here, as `evolve eval` does: one sandbox at a time under a private root
            with tempfile.TemporaryDirectory(prefix="evolve-test-") as root:
                os.chmod(root, 0o711)  # sandboxes drop to an unprivileged user who must reach them
                outcomes = part.species.evaluate(items, workdir=Path(root), timeout=part.evaluation.timeout,
                                                 run_id=rid)
            by_id = {o.individual_id: o for o in outcomes}
            got: list[tuple[HeldOut, Outcome]] = [(h, by_id.get(it.individual_id, Outcome(it.individual_id, "failed")))
                                                  for h, it in zip(plan, items)]
            row, rows = summarise(ind, TEST, generation, got, time.monotonic() - start)
            held.append(row)
            tasks.extend(rows)
        store.replace_held_out(rid, held, tasks)
        validation = dict(store.query(
            "SELECT individual_id, pass_rate FROM held_out WHERE run_id = ? AND split = ?", [rid, VALIDATION]))

    table = Table(title=f"run {rid}: {TEST} split (never selected on)", title_justify="left")
    for col in ("individual", "passed", f"{TEST} pass rate", f"{VALIDATION} pass rate", "status"):
        table.add_column(col, justify="left" if col in ("individual", "status") else "right")
    for h in held:
        table.add_row(h.individual_id, f"{h.passed}/{h.tasks}", fmt(h.pass_rate, 3),
                      fmt(validation.get(h.individual_id), 3), h.status + (f" ({h.error})" if h.error else ""))
    Console().print(table)
    return 0
