"""Rich tables of a run's store: the Pareto front, a run's status, a list of runs."""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table

from evolve.budget import stored_spend
from evolve.store import Store
from populations.errors import SpeciesError

if TYPE_CHECKING:
    from evolve.config import AnySpecies


def finite(value: Any) -> Any:
    """A JSON value with every non-finite number as null: what `json.dumps` writes for one
    otherwise (`Infinity`, `NaN`) is not JSON (an infinite crowding distance, an interval
    never measured)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def fmt(v: object, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == int(v) and abs(v) < 1e12:
            return str(int(v))
        return f"{v:.{digits}g}"
    return str(v)


def front_rows(store: Store, generation: int | None = None, *, of: str | None = None,
               island: int | None = None) -> list[dict[str, Any]]:
    """The non-dominated feasible individuals of a generation (default: the latest), of one
    species (`of`) or of every species: store rows by column name (values as DuckDB gives them).

    A species re-evaluated (`evaluation.replicates` > 1) reports its guarded front instead
    (`standing`: members and pending challengers, objectives the mean of their samples,
    with `samples`, `spread` and `standing`); the others' rows hold None there. `island`: that
    island's own front (`island_fronts`, runs with islands) instead of the run's."""
    guarded = guarded_species(store) if island is None else []
    if island is not None:
        sql = """SELECT f.individual_id, e.objectives, f.crowding, i.genome, e.trajectory, e.node, f.generation,
                        i.species, NULL::VARCHAR, NULL::INTEGER, NULL::DOUBLE[]
                 FROM island_fronts f JOIN evaluations e USING (run_id, individual_id)
                 JOIN individuals i USING (run_id, individual_id)
                 WHERE f.island = ? AND f.rank = 0 AND e.feasible AND (? IS NULL OR i.species = ?)
                   AND f.generation = coalesce(?, (SELECT max(generation) FROM island_fronts))"""
        params: list[object] = [island, of, of, generation]
    elif generation is None:
        sql = """SELECT individual_id, objectives, crowding, genome, trajectory, node, generation, species,
                        NULL::VARCHAR, NULL::INTEGER, NULL::DOUBLE[]
                 FROM pareto_front WHERE (? IS NULL OR species = ?) AND NOT list_contains(?, species)"""
        params = [of, of, guarded]
    else:
        sql = """SELECT f.individual_id, e.objectives, f.crowding, i.genome, e.trajectory, e.node, f.generation,
                        i.species, NULL::VARCHAR, NULL::INTEGER, NULL::DOUBLE[]
                 FROM fronts f JOIN evaluations e USING (run_id, individual_id)
                 JOIN individuals i USING (run_id, individual_id)
                 WHERE f.generation = ? AND f.rank = 0 AND e.feasible AND (? IS NULL OR i.species = ?)
                   AND NOT list_contains(?, i.species)"""
        params = [generation, of, of, guarded]
    if guarded:
        sql += """ UNION ALL
                 SELECT s.individual_id, s.objectives, f.crowding, i.genome, e.trajectory, e.node, s.generation,
                        i.species, s.standing, s.samples, s.spread
                 FROM standing s JOIN individuals i USING (run_id, individual_id)
                 JOIN evaluations e USING (run_id, individual_id)
                 LEFT JOIN fronts f ON f.run_id = s.run_id AND f.generation = s.generation
                                   AND f.individual_id = s.individual_id
                 JOIN (SELECT i2.species AS sp, max(s2.generation) AS latest FROM standing s2
                       JOIN individuals i2 USING (run_id, individual_id) GROUP BY 1) l ON l.sp = i.species
                 WHERE s.generation = coalesce(?, l.latest) AND (? IS NULL OR i.species = ?)"""
        params += [generation, of, of]
    # with each member's pass rates on the held-out splits (NULL where not evaluated on one)
    sql = f"""SELECT p.*, v.pass_rate, t.pass_rate FROM ({sql}) p
              LEFT JOIN held_out v ON v.individual_id = p.individual_id AND v.split = 'validation'
              LEFT JOIN held_out t ON t.individual_id = p.individual_id AND t.split = 'test'"""
    rows = store.query(sql + " ORDER BY p.individual_id", params)
    keys = ("individual_id", "objectives", "crowding", "genome", "trajectory", "node", "generation", "species",
            "standing", "samples", "spread", "validation", "test")
    return [dict(zip(keys, r)) for r in rows]


def guarded_species(store: Store) -> list[str]:
    """Species whose reported front is the guardrail's (`standing`), not survival's rank 0."""
    if not store.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'standing'"):
        return []  # a store from before re-evaluation
    return [r[0] for r in store.query("""SELECT DISTINCT i.species FROM standing s
                                         JOIN individuals i USING (run_id, individual_id) ORDER BY 1""")]


def front_table(store: Store, generation: int | None = None, *, of: str | None = None,
                species: Mapping[str, AnySpecies] | None = None, island: int | None = None) -> RenderableType:
    """The Pareto front as a table; one table per species for a run of several (or only the
    species `of`). `species` (by name) describe genomes; those not given are rebuilt from
    the run's stored config."""
    parts = store.species()
    if of is None and len(parts) > 1:
        return Group(*(front_table(store, generation, of=p["species"], species=species) for p in parts))
    part = next((p for p in parts if p["species"] == of), parts[0])
    run = store.run()
    describer = (species or {}).get(part["species"]) or species_of(run, part["species"])
    rows = front_rows(store, generation, of=of, island=island)
    if rows:
        gen = rows[0]["generation"]
    else:
        gen = generation if generation is not None else store.last_generation(run["run_id"])
    who = (f"{of} " if of is not None and len(parts) > 1 else "") + (f"island {island} of " if island is not None
                                                                      else "")
    points = distinct_points(rows)
    title = (f"Pareto front of {who}{run['run_id']} (generation {fmt(gen)}, {len(rows)} individual(s) at "
             f"{len(points)} distinct point(s))")
    table = Table(title=title, title_justify="left")
    table.add_column("individual", no_wrap=True)
    table.add_column("n", justify="right")
    for o in part["objectives"]:
        arrow = "max ↑" if o["direction"] == "max" else "min ↓"
        table.add_column(f"{o['metric']}\n{arrow}", justify="right", overflow="fold", min_width=7)
    held = [split for split in ("validation", "test") if any(r[split] is not None for r in rows)]
    for split in held:  # measured, never selected on
        table.add_column(f"{split}\npass rate", justify="right")
    guarded = any(r["standing"] is not None for r in rows)
    if guarded:  # re-evaluated: objectives are means; samples, and member or pending
        table.add_column("samples", justify="right", no_wrap=True)
        table.add_column("standing", no_wrap=True, min_width=7)
    table.add_column("crowding", justify="right")
    table.add_column("genome", no_wrap=True, overflow="ellipsis", max_width=28)
    for members in points:  # one row per objective vector: copies do not pad the front
        first = members[0]
        others = f" +{len(members) - 1}" if len(members) > 1 else ""
        values = ([f"{fmt(v)} ± {fmt(sd, 2)}" for v, sd in zip(first["objectives"], first["spread"])]
                  if guarded else [fmt(v) for v in first["objectives"]])
        table.add_row(first["individual_id"] + others, str(len(members)), *values,
                      *[_spread([m[split] for m in members]) for split in held],
                      *([str(first["samples"]), first["standing"]] if guarded else []),
                      fmt(first["crowding"], 3), _describe(describer, first["genome"]))
    return table


def distinct_points(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Front rows grouped by objective vector, in the order each vector first appears."""
    groups: dict[tuple[object, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r["objectives"]), []).append(r)
    return list(groups.values())


def _spread(values: list[object]) -> str:
    """One value, or the range the members of a point span (they may differ off the front's axes)."""
    known = sorted(v for v in values if isinstance(v, int | float))
    if not known:
        return "-"
    low, high = fmt(float(known[0]), 3), fmt(float(known[-1]), 3)
    return low if low == high else f"{low}–{high}"


def _describe(species: AnySpecies | None, genome_json: str) -> str:
    if species is not None:
        try:
            return str(species.describe(species.from_data(json.loads(genome_json))))
        except (SpeciesError, ValueError, TypeError, KeyError):
            pass  # a display nicety must never break the table
    return genome_json[:40] + ("…" if len(genome_json) > 40 else "")


def species_of(run: Mapping[str, Any], name: str | None = None) -> AnySpecies | None:
    """A species of the run (the first, or the one called `name`) rebuilt from its stored
    config; None when that is not possible."""
    from populations import make_species

    try:
        specs = run["config"]["species"]
        for spec in specs if isinstance(specs, list) else [specs]:
            sp = make_species(spec["name"], spec.get("params") or {})
            if name is None or sp.name == name:
                return sp
    except (SpeciesError, KeyError, TypeError):  # only used to describe genomes
        return None
    return None


def status_table(store: Store) -> Table:
    run = store.run()
    rid = run["run_id"]
    counts = dict(store.query("SELECT status, count(*) FROM evaluations GROUP BY status"))
    last = store.query("""SELECT generation, hypervolume, front_size, population FROM generations
                          WHERE run_id = ? ORDER BY generation DESC LIMIT 1""", [rid])
    staged = store.query("SELECT count(*) FROM staged WHERE run_id = ?", [rid])[0][0]
    # species of one run share each generation's wall time: count it once per generation
    wall = store.query("""SELECT coalesce(sum(w), 0) FROM (SELECT max(wall_seconds) AS w FROM generations
                          WHERE run_id = ? GROUP BY generation)""", [rid])[0][0]
    parts = store.species()
    table = Table(title=f"run {rid}", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value")
    done = (last[0][0] + 1) if last else 0
    spent, stopped_by = stored_spend(store.spend(rid))
    table.add_row("status", run["status"] + (f" (budget {stopped_by} reached)" if run["status"] == "stopped"
                                             and stopped_by else ""))
    table.add_row("species", run["species"])
    table.add_row("generations", f"{done} of {run['generations']} committed")
    evals = sum(counts.values())
    table.add_row("evaluations", f"{evals} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'})"
                  + (f"; {staged} staged in the running generation" if staged else ""))
    if len(parts) == 1:
        if last:
            table.add_row("hypervolume", fmt(last[0][1]))
            table.add_row("front", f"{last[0][2]} non-dominated of {last[0][3]}")
        table.add_row("objectives", ", ".join(f"{o['metric']} ({o['direction']})" for o in parts[0]["objectives"]))
    for part in parts if len(parts) > 1 else []:
        sp = part["species"]
        mine = store.query("""SELECT hypervolume, front_size, population FROM generations
                              WHERE run_id = ? AND species = ? ORDER BY generation DESC LIMIT 1""", [rid, sp])
        if mine:
            table.add_row(f"{sp}: hypervolume, front", f"{fmt(mine[0][0])}; {mine[0][1]} non-dominated of {mine[0][2]}")
        table.add_row(f"{sp}: objectives", ", ".join(f"{o['metric']} ({o['direction']})" for o in part["objectives"]))
    for split, n, best, mean in store.query(
            """SELECT split, count(*), max(pass_rate), avg(pass_rate) FROM held_out WHERE run_id = ?
               GROUP BY split ORDER BY split DESC""", [rid]):
        table.add_row(f"{split} split", f"{n} individual(s) evaluated; pass rate best {fmt(best, 3)}, "
                                        f"mean {fmt(mean, 3)}" + (" (never selected on)" if split == "test" else ""))
    standing = store.query(
        """SELECT i.species, count(*) FILTER (WHERE s.standing = 'member'),
                  count(*) FILTER (WHERE s.standing = 'pending')
           FROM standing s JOIN individuals i USING (run_id, individual_id)
           WHERE s.generation = (SELECT max(generation) FROM standing) GROUP BY 1 ORDER BY 1""") \
        if guarded_species(store) else []
    for sp, members, pending in standing:
        table.add_row(f"{sp}: reported front" if len(parts) > 1 else "reported front",
                      f"{members} member(s), {pending} pending (re-evaluated: objectives are means of samples)")
    islands = run["config"].get("islands") or {}
    if islands.get("count", 1) > 1:
        per_island = store.query("""SELECT island, count(*) FILTER (WHERE rank = 0) FROM island_fronts
                                    WHERE run_id = ? AND generation = (SELECT max(generation) FROM island_fronts)
                                    GROUP BY 1 ORDER BY 1""", [rid])
        table.add_row("islands", f"{islands['count']}, migrating {islands['migrants']} every {islands['interval']} "
                                 "generation(s) along a ring; fronts: "
                      + ", ".join(f"i{k} {n}" for k, n in per_island)
                      + (f" (overall {last[0][2]})" if last else ""))
    cascade = store.query("""SELECT sum(gated), sum(stage_seconds), sum(gate_saved), count(*) FILTER
                             (WHERE gate_saved IS NULL), count(*) FROM generations WHERE run_id = ?
                             AND stage_seconds > 0""", [rid]) \
        if store.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'stages'") \
        and store.query("SELECT 1 FROM stages WHERE run_id = ? LIMIT 1", [rid]) else []
    for gated, stage_s, saved, unknown, gens in cascade:
        table.add_row("cascade", f"{gated} gated over {gens} generation(s); cheap stages {stage_s:.1f}s, full "
                                 f"evaluation saved ~{saved or 0:.1f}s"
                      + (f" (+ {unknown} generation(s) gated before any full evaluation: unknown)" if unknown else ""))
    table.add_row("engine time", f"{wall:.1f}s")
    table.add_row("spend", spent)
    events = store.query("SELECT at_time, kind, message FROM events WHERE run_id = ? "
                         "ORDER BY event_id DESC LIMIT 5", [rid])
    for at, kind, message in reversed(events):
        table.add_row(f"event {at:%H:%M:%S}", f"{kind}: {message}")
    return table
