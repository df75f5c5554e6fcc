"""What each dashboard page shows, read from a run's store opened read-only.

Each function opens the store for one request and closes it again (a running driver commits
between requests) and returns plain JSON values: no NaN or Infinity (an objective that is
not a finite number is null; a crowding distance of infinity is the string "inf").
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from evolve.errors import EvolveError
from evolve.genstats import failure_reason
from evolve.store import STORE_FILE, Store

LINEAGE_DEPTH = 4  # generations of ancestors a lineage request returns (each node can ask for more)
LINEAGE_LIMIT = 400  # nodes in one lineage answer, whatever the depth
MIN_STEP = 0.08  # seconds: each key of a replay stays on screen at least this long


class NotFound(EvolveError):
    """An unknown run, individual, generation or trajectory (the server answers 404)."""


class Busy(EvolveError):
    """The store cannot be read now (its driver holds it); the page retries (503)."""


@dataclass(frozen=True)
class RunDirs:
    """The runs the dashboard shows: the RUN arguments, or every run under `root` (looked up
    again at each request, so a run started after the dashboard appears)."""

    explicit: tuple[Path, ...]
    root: Path

    def all(self) -> dict[str, Path]:
        if self.explicit:
            found = list(self.explicit)
        elif self.root.is_dir():
            found = sorted(d for d in self.root.iterdir() if (d / STORE_FILE).exists())
        else:
            found = []
        named: dict[str, Path] = {}
        for d in found:  # two RUN arguments with one folder name: the second is name-2
            name, k = d.name, 2
            while name in named:
                name, k = f"{d.name}-{k}", k + 1
            named[name] = d
        return named

    def get(self, name: str) -> Path:
        path = self.all().get(name)
        if path is None:
            raise NotFound(f"no run {name!r} here")
        return path


@contextmanager
def _store(run_dir: Path) -> Iterator[Store]:
    try:
        store = Store.open(run_dir, read_only=True)
    except EvolveError as exc:
        if "lock" in str(exc).lower():
            raise Busy(str(exc)) from None
        raise
    try:
        yield store
    finally:
        store.close()


def jsonable(value: Any) -> Any:
    """Store values as strict JSON values: datetimes as text, non-finite floats as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _nums(values: Sequence[float | None] | None) -> list[float | None]:
    """Objective values to plot: a value that is not a finite number is null."""
    return [v if v is not None and math.isfinite(v) else None for v in values or ()]


def _run_id(store: Store) -> str:
    return str(store.run()["run_id"])


# --- the runs list --------------------------------------------------------------------------------
def runs(dirs: RunDirs) -> list[dict[str, Any]]:
    return [run_summary(name, path) for name, path in dirs.all().items()]


def run_summary(name: str, run_dir: Path) -> dict[str, Any]:
    """Status, generations, evaluations, latest hypervolume and best validation pass rate;
    while the store cannot be read, the driver's `status.json` snapshot."""
    try:
        with _store(run_dir) as store:
            info = store.run()
            rid = info["run_id"]
            done, updated = store.query("SELECT count(DISTINCT generation), max(committed_at) FROM generations "
                                        "WHERE run_id = ?", [rid])[0]
            evals, failed = store.query("SELECT count(*), count(*) FILTER (WHERE status <> 'ok') FROM evaluations "
                                        "WHERE run_id = ?", [rid])[0]
            best = store.query("SELECT max(pass_rate) FROM held_out WHERE run_id = ? AND split = 'validation'",
                               [rid])[0][0]
            hv = store.query("""SELECT species, hypervolume FROM generations WHERE run_id = ? AND generation =
                                (SELECT max(generation) FROM generations WHERE run_id = ?) ORDER BY species""",
                             [rid, rid])
    except Busy as exc:
        return {"name": name, "live": True, "note": str(exc), **_snapshot(run_dir)}
    except EvolveError as exc:  # one unreadable store does not hide the others
        return {"name": name, "live": False, "status": "unreadable", "note": str(exc)}
    return jsonable({"name": name, "live": False, "run_id": rid, "status": info["status"],
                     "species": info["species"], "generations": done, "planned": info["generations"],
                     "evaluations": evals, "failed": failed, "best_validation": best,
                     "hypervolume": {sp: h for sp, h in hv}, "created_at": info["created_at"],
                     "updated_at": max(info["updated_at"], updated) if updated else info["updated_at"]})


def _snapshot(run_dir: Path) -> dict[str, Any]:
    from evolve.loop import STATUS_FILE

    try:
        live = json.loads((run_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"status": "locked"}
    return jsonable({"run_id": live.get("run_id"), "status": live.get("state", "running"),
                     "species": live.get("species"), "generations": live.get("generation"),
                     "planned": live.get("generations"), "best_validation": live.get("validation"),
                     "hypervolume": {"": live.get("hypervolume")}, "updated_at": _when(live.get("updated_at"))})


def _when(text: object) -> object:
    """A snapshot's ISO time (UTC, with its offset) as the store writes times: naive UTC."""
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return text
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


# --- a run ----------------------------------------------------------------------------------------
def version(run_dir: Path) -> dict[str, Any]:
    """What changes when the driver commits: the page polls this and reloads on a change."""
    try:
        with _store(run_dir) as store:
            return {"busy": False, **_version(store, _run_id(store))}
    except Busy as exc:  # with what the driver says of its progress meanwhile
        return {"busy": True, "note": str(exc), "snapshot": _snapshot(run_dir)}


def _version(store: Store, rid: str) -> dict[str, Any]:
    rows, last, at = store.query("SELECT count(*), max(generation), max(committed_at) FROM generations "
                                 "WHERE run_id = ?", [rid])[0]
    held = store.query("SELECT count(*) FROM held_out WHERE run_id = ?", [rid])[0][0]
    status = store.run()["status"]
    return jsonable({"version": f"{rows}:{at}:{held}:{status}", "generation": last, "status": status})


def _species(store: Store, of: str | None) -> dict[str, Any]:
    parts = store.species()
    if not parts:
        raise NotFound("the run has no species")
    if of is None:
        return parts[0]
    for p in parts:
        if p["species"] == of:
            return p
    raise NotFound(f"the run has no species {of!r} (species: {', '.join(p['species'] for p in parts)})")


def run_view(run_dir: Path, species: str | None = None) -> dict[str, Any]:
    """A run's page: generations (hypervolume and counts), per-objective min/mean/max of each
    generation's evaluations, and failures grouped by reason (`genstats.failure_reason`)."""
    with _store(run_dir) as store:
        info = store.run()
        rid = info["run_id"]
        part = _species(store, species)
        of = part["species"]
        gens = store.query("""SELECT generation, hypervolume, evaluations, failed, duplicates, population, front_size,
                                     wall_seconds, committed_at
                              FROM generations WHERE run_id = ? AND species = ? ORDER BY generation""", [rid, of])
        # over each generation's evaluations that finished ok, as the engine stores them
        # (`genstats.objective_stats`; computed here too, so a store from before has them)
        stats = store.query("""
            SELECT generation, k, min(v), avg(v), max(v) FROM (
                SELECT e.generation, unnest(e.objectives) AS v, unnest(range(1, len(e.objectives) + 1)) AS k
                FROM evaluations e JOIN individuals i USING (run_id, individual_id)
                WHERE e.run_id = ? AND i.species = ? AND e.status = 'ok')
            WHERE isfinite(v) GROUP BY ALL ORDER BY generation, k""", [rid, of])
        failures = store.query("""
            SELECT CASE WHEN e.status <> 'ok' THEN e.status ELSE 'infeasible' END,
                   CASE WHEN e.status <> 'ok' THEN e.error ELSE e.note END, e.individual_id, e.generation
            FROM evaluations e JOIN individuals i USING (run_id, individual_id)
            WHERE e.run_id = ? AND i.species = ? AND (e.status <> 'ok' OR NOT e.feasible)
            ORDER BY e.generation, e.individual_id""", [rid, of])
        species_names = [p["species"] for p in store.species()]
        now = _version(store, rid)
    n = len(part["objectives"])
    by_gen: dict[int, dict[str, list[float | None]]] = {}
    for g, k, lo, mean, hi in stats:
        row = by_gen.setdefault(int(g), {"min": [None] * n, "mean": [None] * n, "max": [None] * n})
        if 1 <= k <= n:
            row["min"][k - 1], row["mean"][k - 1], row["max"][k - 1] = lo, mean, hi
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for status, text, ind, g in failures:
        why = failure_reason(status, text)  # "status: reason", or the status alone
        key = (status, why[len(status) + 2:] if why.startswith(f"{status}: ") else "no reason recorded")
        entry = grouped.setdefault(key, {"status": status, "reason": key[1], "count": 0, "examples": [],
                                         "first": g, "last": g})
        entry["count"] += 1
        entry["last"] = g
        if len(entry["examples"]) < 3:
            entry["examples"].append(ind)
    keys = ("generation", "hypervolume", "evaluations", "failed", "duplicates", "population", "front_size",
            "wall_seconds", "committed_at")
    return jsonable({
        "run_id": rid, "name": info["name"], "status": info["status"], "planned": info["generations"],
        "version": now["version"],
        "species": of, "all_species": species_names, "objectives": part["objectives"],
        "generations": [dict(zip(keys, r)) for r in gens],
        "stats": [{"generation": g, **by_gen[g]} for g in sorted(by_gen)],
        "failures": sorted(grouped.values(), key=lambda e: (-e["count"], e["status"], e["reason"]))})


def generation_points(run_dir: Path, generation: int | None, species: str | None = None,
                      earlier: bool = False) -> dict[str, Any]:
    """Every individual to draw for one generation (None: the latest): the population that
    survived it (front = rank 0), what it evaluated and discarded, failures; with `earlier`,
    every evaluation before it too. Points are [id, generation, objectives, kind, status]."""
    with _store(run_dir) as store:
        rid = _run_id(store)
        of = _species(store, species)["species"]
        if generation is None:
            generation = store.query("SELECT max(generation) FROM generations WHERE run_id = ? AND species = ?",
                                     [rid, of])[0][0]
            if generation is None:
                return {"generation": None, "species": of, "points": []}
        known = store.query("SELECT count(*) FROM generations WHERE run_id = ? AND species = ? AND generation = ?",
                            [rid, of, generation])[0][0]
        if not known:
            raise NotFound(f"run {rid} has no generation {generation} of species {of}")
        rows = store.query("""
            WITH pop AS (SELECT individual_id, rank FROM fronts WHERE run_id = ? AND generation = ?)
            SELECT e.individual_id, e.generation, e.objectives, e.status, e.feasible, pop.rank
            FROM evaluations e JOIN individuals i USING (run_id, individual_id)
            LEFT JOIN pop USING (individual_id)
            WHERE e.run_id = ? AND i.species = ?
              AND (pop.rank IS NOT NULL OR e.generation = ? OR (? AND e.generation < ?))
            ORDER BY e.individual_id""", [rid, generation, rid, of, generation, earlier, generation])
    points = []
    for ind, g, objectives, status, feasible, rank in rows:
        if status != "ok":
            kind = "failed"
        elif not feasible:
            kind = "infeasible"
        elif rank == 0:
            kind = "front"
        elif rank is not None:
            kind = "population"
        elif g == generation:
            kind = "discarded"
        else:
            kind = "earlier"
        points.append([ind, int(g), _nums(objectives), kind, status])
    return {"generation": generation, "species": of, "points": points}


# --- an individual --------------------------------------------------------------------------------
def individual(run_dir: Path, ind: str) -> dict[str, Any]:
    """Genome, evaluation, metrics per level, per-task results, held-out results, the
    generations it lived through and its children."""
    with _store(run_dir) as store:
        rid = _run_id(store)
        rows = store.query("""SELECT individual_id, species, generation, hash, genome, parents, seed, origin
                              FROM individuals WHERE run_id = ? AND individual_id = ?""", [rid, ind])
        if not rows:
            raise NotFound(f"run {rid} has no individual {ind!r}")
        _id, species, generation, digest, genome, parents, seed, origin = rows[0]
        objectives = _species(store, species)["objectives"]
        ev = store.query("""SELECT status, objectives, metrics, cv, feasible, note, error, wall_seconds, node,
                                   trajectory, attempts, isolation, reused_from
                            FROM evaluations WHERE run_id = ? AND individual_id = ?""", [rid, ind])
        tasks = store.query("""SELECT split, task_id, generation, tier, passed, reason, typed, seconds
                               FROM task_results WHERE run_id = ? AND individual_id = ? ORDER BY split, task_id""",
                            [rid, ind])
        held = store.query("""SELECT split, generation, status, passed, tasks, pass_rate, error, reused_from
                              FROM held_out WHERE run_id = ? AND individual_id = ? ORDER BY split""", [rid, ind])
        lived = store.query("""SELECT min(generation), max(generation), count(*) FILTER (WHERE rank = 0), count(*)
                               FROM fronts WHERE run_id = ? AND individual_id = ?""", [rid, ind])[0]
        children = [r[0] for r in store.query(
            """SELECT individual_id FROM individuals WHERE run_id = ? AND list_contains(parents, ?)
               ORDER BY individual_id LIMIT 50""", [rid, ind])]
    evaluation: dict[str, Any] | None = None
    metrics: dict[str, Any] = {"levels": [], "levelled": [], "plain": []}
    if ev:
        (status, values, metrics_text, cv, feasible, note, error, wall, node, trajectory, attempts, isolation,
         reused_from) = ev[0]
        evaluation = {"status": status, "objectives": _nums(values), "cv": cv, "feasible": feasible, "note": note,
                      "error": error, "wall_seconds": wall, "node": node, "attempts": attempts,
                      "isolation": isolation, "reused_from": reused_from,
                      "trajectory": trajectory if trajectory and (run_dir / trajectory / ".git").exists() else None}
        metrics = _per_level(json.loads(metrics_text))
    keys = ("split", "task_id", "generation", "tier", "passed", "reason", "typed", "seconds")
    held_keys = ("split", "generation", "status", "passed", "tasks", "pass_rate", "error", "reused_from")
    return jsonable({
        "run_id": rid, "individual_id": ind, "species": species, "generation": generation, "hash": digest,
        # the seed is a UBIGINT, more than a JS number holds exactly: sent as text
        "genome": json.loads(genome), "parents": list(parents), "seed": str(seed), "origin": origin,
        "objectives": objectives, "evaluation": evaluation, "metrics": metrics,
        "tasks": [dict(zip(keys, r)) for r in tasks], "held_out": [dict(zip(held_keys, r)) for r in held],
        "lived": {"first": lived[0], "last": lived[1], "on_front": lived[2], "generations": lived[3]},
        "children": children})


def _per_level(metrics: dict[str, Any]) -> dict[str, Any]:
    """`name@level` metrics as one row per name and one column per level; the rest plain."""
    levelled: dict[str, dict[str, Any]] = {}
    plain: list[list[Any]] = []
    for key in sorted(metrics):
        name, at, level = key.partition("@")
        if at:
            levelled.setdefault(name, {})[level] = metrics[key]
        else:
            plain.append([key, metrics[key]])
    levels = sorted({lv for row in levelled.values() for lv in row}, key=lambda s: (len(s), s), reverse=True)
    return {"levels": levels, "levelled": [[name, [row.get(lv) for lv in levels]] for name, row in levelled.items()],
            "plain": plain}


def lineage(run_dir: Path, ind: str, depth: int = LINEAGE_DEPTH) -> dict[str, Any]:
    """`ind` and its ancestors up to `depth` generations back: one query per generation of
    ancestry (an index lookup of the ids it needs) and one for their evaluations, so what it
    costs follows the ancestry shown, not the run's size nor the whole ancestry (which the
    store's `lineage` macro gives). Nodes whose parents were not fetched are listed in `more`."""
    with _store(run_dir) as store:
        rid = _run_id(store)
        nodes: dict[str, dict[str, Any]] = {}
        frontier = [ind]
        for level in range(depth + 1):
            if not frontier or len(nodes) >= LINEAGE_LIMIT:
                break
            rows = store.query(f"""SELECT individual_id, generation, origin, parents FROM individuals
                                   WHERE run_id = ? AND individual_id IN ({", ".join("?" * len(frontier))})""",
                               [rid, *frontier])
            if level == 0 and not rows:
                raise NotFound(f"run {rid} has no individual {ind!r}")
            nxt: list[str] = []
            for i, g, origin, parents in rows:
                nodes[i] = {"generation": g, "origin": origin, "parents": list(parents), "status": None,
                            "feasible": None, "objectives": []}
                nxt.extend(p for p in parents if p not in nodes and p not in nxt)
            frontier = nxt[:max(0, LINEAGE_LIMIT - len(nodes))]
        for i, status, feasible, values in store.query(
                f"""SELECT individual_id, status, feasible, objectives FROM evaluations
                    WHERE run_id = ? AND individual_id IN ({", ".join("?" * len(nodes))})""", [rid, *nodes]):
            nodes[i].update(status=status, feasible=feasible, objectives=_nums(values))
    more = sorted(i for i, n in nodes.items() if any(p not in nodes for p in n["parents"]))
    return jsonable({"root": ind, "nodes": nodes, "more": more})


# --- a replay -------------------------------------------------------------------------------------
def cast(run_dir: Path, ind: str) -> dict[str, Any]:
    """The individual's trajectory as an asciicast (header and events) that a person can
    follow: every key on screen at least MIN_STEP, a long pause at most `replay.MAX_IDLE`;
    with each frame's time, session, sequence number and keys (for a frame counter)."""
    info = individual(run_dir, ind)
    rel = (info["evaluation"] or {}).get("trajectory")
    if not rel:
        raise NotFound(f"individual {ind} has no trajectory to replay")
    repo = run_dir / rel
    return _cast(str(repo), (repo / ".git").stat().st_mtime_ns, f"{info['run_id']} {ind}")


@lru_cache(maxsize=16)  # a stored trajectory never changes: the key includes its mtime all the same
def _cast(repo: str, _mtime: int, title: str) -> dict[str, Any]:
    from evolve.replay import MAX_IDLE, asciicast, load_frames

    frames = load_frames(Path(repo))
    if not frames:
        raise NotFound(f"trajectory {repo} holds no key frames")
    # the cast is paced already: each key at least MIN_STEP, a pause at most MAX_IDLE
    lines = asciicast(frames, 1.0, title, max_idle=MAX_IDLE, min_frame=MIN_STEP).splitlines()
    header, events = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    times = [ev[0] for ev in events]
    markers, seen = [], set()
    for f, t in zip(frames, times):
        if f.session not in seen:
            seen.add(f.session)
            markers.append([t, f.session])
    return {"header": header, "events": events, "markers": markers, "min_step": MIN_STEP, "max_gap": MAX_IDLE,
            "frames": [[t, f.session, f.seq, f.kind, f.keys] for f, t in zip(frames, times)]}
