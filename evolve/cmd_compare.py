"""`evolve compare RUN RUN...`: finished (or stopped) runs side by side, at equal budget.

For each run (and each species the runs share, or the one `--species` names): evaluations
spent (copies of a genome evaluated before are kept, not spent), generations, engine time,
the final hypervolume and front, the best validation pass rate on any front and on the final
one, and the curve "best validation pass rate so far" against evaluations spent. The table
reads that curve (and the hypervolume) at fractions of the smallest budget among the runs:
the equal-budget comparison, e.g. evolution against a random-search baseline. The test split,
if `evolve test` was run, is shown as it is: never selected on.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evolve.runs import add_runs_option

if TYPE_CHECKING:
    from rich.console import RenderableType

    from evolve.store import Store

FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # of the equal budget, where the table reads the curves


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("compare", help="put finished runs side by side at equal budget",
                       description="Compare finished (or stopped) runs: evaluations spent, hypervolume, front, "
                                   "best validation pass rate against evaluations spent (read at the smallest "
                                   "budget among the runs), test pass rate and cost.")
    p.add_argument("run_refs", nargs="+", metavar="RUN", help="run directories (or run ids under --runs); two or more")
    add_runs_option(p)
    p.add_argument("--species", help="only this species (default: every species the runs share)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default) or JSON lines, one object per run and species")
    p.set_defaults(handler=run)


@dataclass
class Side:
    """One species of one run, as compare reports it."""

    run_id: str
    run_dir: str
    species: str
    status: str
    objectives: list[dict[str, Any]]
    generations: int  # committed for this species
    evaluations: int  # spent: evaluations rows not copied from an earlier one (reused_from IS NULL)
    duplicates: int  # copies of an earlier evaluation of the same genome: kept, not spent
    wall_seconds: float  # engine time: per generation the slowest species' wall, summed
    hypervolume: float | None  # the last generation's
    front_individuals: int
    front_points: int  # distinct objective vectors among them
    validation_best_any_front: float | None
    validation_best_final_front: float | None
    validation_curve: list[list[float | None]]  # [evaluations spent by the end of a generation, best so far]
    hypervolume_curve: list[list[float | None]]  # [evaluations spent by the end of a generation, hypervolume]
    test_best: float | None  # `evolve test`: never selected on
    evaluation_seconds: float  # sum of the evaluations' wall seconds
    held_out_seconds: float  # sum of the held-out evaluations' wall seconds
    expert_tokens: int | None  # expert prompt + completion tokens, where metrics carry them
    budget: int = 0  # the equal budget (smallest evaluations spent among the runs compared)
    at_budget: list[dict[str, Any]] = field(default_factory=list)  # the curves read at FRACTIONS of it


def run(args: argparse.Namespace) -> int:
    from evolve.errors import EvolveError
    from evolve.runs import find_run
    from evolve.store import Store
    from evolve.tables import finite

    if len(args.run_refs) < 2:
        raise EvolveError("give at least two runs to compare")
    dirs = [find_run(Path(args.runs), ref) for ref in args.run_refs]
    loaded: list[tuple[str, Path, dict[str, Side]]] = []
    for ref, run_dir in zip(args.run_refs, dirs):
        try:
            store = Store.open(run_dir, read_only=True)
        except EvolveError as exc:
            if "locked" in str(exc):
                raise EvolveError(f"run {ref} is still going, compare it once it has finished or been stopped: "
                                  f"{exc}") from None
            raise
        with store:
            info = store.run()
            sides = {p["species"]: _side(store, info, run_dir, p) for p in store.species()}
        if any(info["run_id"] == rid for rid, _, _ in loaded):
            raise EvolveError(f"run {info['run_id']} is given twice")
        loaded.append((info["run_id"], run_dir, sides))

    if args.species is not None:
        for rid, _, sides in loaded:
            if args.species not in sides:
                raise EvolveError(f"run {rid} has no species {args.species!r} (species: {', '.join(sides)})")
        shared = [args.species]
    else:
        shared = [s for s in loaded[0][2] if all(s in sides for _, _, sides in loaded[1:])]
        if not shared:
            held = "; ".join(f"{rid}: {', '.join(sides) or 'none'}" for rid, _, sides in loaded)
            raise EvolveError(f"the runs share no species ({held})")

    groups = []
    for sp in shared:
        sides_of = [sides[sp] for _, _, sides in loaded]
        budget = min(s.evaluations for s in sides_of)
        for s in sides_of:
            s.budget = budget
            s.at_budget = [{"fraction": f, "evaluations": math.floor(budget * f),
                            "validation": _at(s.validation_curve, math.floor(budget * f)),
                            "hypervolume": _at(s.hypervolume_curve, math.floor(budget * f))} for f in FRACTIONS]
        groups.append((sp, sides_of))

    if args.format == "json":
        for _, sides_of in groups:
            for s in sides_of:
                print(json.dumps(finite(asdict(s)), allow_nan=False))
    else:
        from rich.console import Console

        console = Console()
        for sp, sides_of in groups:
            console.print(_table(sp, sides_of))
    return 0


def _side(store: Store, info: dict[str, Any], run_dir: Path, part: dict[str, Any]) -> Side:
    from evolve.held_out import TEST, VALIDATION
    from evolve.tables import distinct_points, front_rows

    rid, sp = info["run_id"], part["species"]
    # evaluations spent per generation (a copy of an earlier evaluation is kept, not spent)
    per_gen = dict(store.query(
        """SELECT e.generation, count(*) FROM evaluations e JOIN individuals i USING (run_id, individual_id)
           WHERE e.run_id = ? AND i.species = ? AND e.reused_from IS NULL GROUP BY e.generation""", [rid, sp]))
    spent, dups, eval_seconds, tokens, with_tokens = store.query(
        """SELECT count(*) FILTER (WHERE e.reused_from IS NULL), count(*) FILTER (WHERE e.reused_from IS NOT NULL),
                  coalesce(sum(e.wall_seconds), 0),
                  sum(coalesce(TRY_CAST(e.metrics ->> 'expert_prompt_tokens' AS DOUBLE), 0)
                      + coalesce(TRY_CAST(e.metrics ->> 'expert_completion_tokens' AS DOUBLE), 0))
                      FILTER (WHERE e.reused_from IS NULL),
                  count(*) FILTER (WHERE e.reused_from IS NULL AND (json_exists(e.metrics, '$.expert_prompt_tokens')
                                   OR json_exists(e.metrics, '$.expert_completion_tokens')))
           FROM evaluations e JOIN individuals i USING (run_id, individual_id)
           WHERE e.run_id = ? AND i.species = ?""", [rid, sp])[0]
    gens = store.query("""SELECT generation, hypervolume FROM generations WHERE run_id = ? AND species = ?
                          ORDER BY generation""", [rid, sp])
    # species of one run share each generation's wall time: count it once per generation (as `evolve status`)
    wall = store.query("""SELECT coalesce(sum(w), 0) FROM (SELECT max(wall_seconds) AS w FROM generations
                          WHERE run_id = ? GROUP BY generation)""", [rid])[0][0]
    # validation results of individuals that were on a front (rank 0) of some generation, by when they came
    validated = store.query(
        """SELECT h.generation, h.pass_rate FROM held_out h JOIN individuals i USING (run_id, individual_id)
           WHERE h.run_id = ? AND i.species = ? AND h.split = ?
             AND h.individual_id IN (SELECT individual_id FROM fronts WHERE run_id = ? AND rank = 0)""",
        [rid, sp, VALIDATION, rid])
    test_best, held_seconds = store.query(
        """SELECT max(h.pass_rate) FILTER (WHERE h.split = ?), coalesce(sum(h.wall_seconds), 0)
           FROM held_out h JOIN individuals i USING (run_id, individual_id)
           WHERE h.run_id = ? AND i.species = ?""", [TEST, rid, sp])[0]
    front = [r for r in front_rows(store, of=sp) if r["standing"] != "pending"]  # re-evaluated: members only
    final_validation = [float(r["validation"]) for r in front if r["validation"] is not None]

    validation_curve: list[list[float | None]] = []
    hypervolume_curve: list[list[float | None]] = []
    cumulative = 0
    for g, hv in gens:
        cumulative += int(per_gen.get(g, 0))
        known = [float(rate) for at, rate in validated if at <= g]
        validation_curve.append([cumulative, max(known) if known else None])
        hypervolume_curve.append([cumulative, None if hv is None else float(hv)])
    return Side(
        run_id=rid, run_dir=str(run_dir), species=sp, status=str(info["status"]), objectives=part["objectives"],
        generations=len(gens), evaluations=int(spent), duplicates=int(dups), wall_seconds=float(wall),
        hypervolume=None if not gens or gens[-1][1] is None else float(gens[-1][1]),
        front_individuals=len(front), front_points=len(distinct_points(front)),
        validation_best_any_front=max((float(r) for _, r in validated), default=None),
        validation_best_final_front=max(final_validation, default=None),
        validation_curve=validation_curve, hypervolume_curve=hypervolume_curve,
        test_best=None if test_best is None else float(test_best),
        evaluation_seconds=float(eval_seconds), held_out_seconds=float(held_seconds),
        expert_tokens=int(tokens) if with_tokens else None)


def _at(curve: list[list[float | None]], evaluations: int) -> float | None:
    """A curve's value once at most `evaluations` were spent: its last point within them."""
    value = None
    for spent, v in curve:
        if spent is None or spent > evaluations:
            break
        value = v
    return value


def _seconds(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.3g}"


def _table(species: str, sides: list[Side]) -> RenderableType:
    from rich.table import Table

    from evolve.tables import fmt

    budget = sides[0].budget
    smallest = ", ".join(s.run_id for s in sides if s.evaluations == budget)
    table = Table(title=f"compare {species}: {len(sides)} runs; equal budget {budget} evaluations (the smallest: "
                        f"{smallest})", title_justify="left")
    table.add_column("")
    for s in sides:
        table.add_column(s.run_id, justify="right")
    objectives = {json.dumps(s.objectives, sort_keys=True) for s in sides}
    if len(objectives) > 1:
        table.caption = "objectives or references differ between the runs: their hypervolumes are not comparable"
        table.caption_justify = "left"

    def row(label: str, values: list[str]) -> None:
        table.add_row(label, *values)

    row("status", [s.status for s in sides])
    row("generations", [str(s.generations) for s in sides])
    row("evaluations spent", [str(s.evaluations) for s in sides])
    row("duplicates (kept, not spent)", [str(s.duplicates) for s in sides])
    row("engine seconds", [_seconds(s.wall_seconds) for s in sides])
    row("final hypervolume", [fmt(s.hypervolume) for s in sides])
    row("final front", [f"{s.front_points} point(s), {s.front_individuals} ind." for s in sides])
    row(f"hypervolume @ {budget} evals", [fmt(s.at_budget[-1]["hypervolume"]) for s in sides])
    row("best validation, any front", [fmt(s.validation_best_any_front, 3) for s in sides])
    row("best validation, final front", [fmt(s.validation_best_final_front, 3) for s in sides])
    for k, f in enumerate(FRACTIONS):
        point = sides[0].at_budget[k]["evaluations"]
        row(f"best validation @ {point} evals ({f:.0%})", [fmt(s.at_budget[k]["validation"], 3) for s in sides])
    row("best test (never selected on)", [fmt(s.test_best, 3) for s in sides])
    row("evaluation seconds", [_seconds(s.evaluation_seconds) for s in sides])
    if any(s.held_out_seconds for s in sides):
        row("held-out seconds", [_seconds(s.held_out_seconds) for s in sides])
    row("expert tokens", [fmt(s.expert_tokens) for s in sides])
    return table
