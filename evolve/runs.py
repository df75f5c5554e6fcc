"""Run directories: a new run with its store, finding one again, and the config check on resume.

A run lives in `RUNS/<run_id>/`: `store.duckdb` (see `evolve.store`), `status.json` while
its driver runs, `trajectories/` and `artifacts/` (see `evolve.trajectories`).
"""
from __future__ import annotations

import argparse
import platform
import secrets
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from evolve.errors import EvolveError
from evolve.store import SpeciesRow, Store

if TYPE_CHECKING:  # the config (pydantic) loads only where a run is made: `evolve --help` stays fast
    from evolve.config import Resolved

DEFAULT_RUNS = "runs"


def add_runs_option(parser: argparse.ArgumentParser) -> None:
    """`--runs DIR`, where run directories live: one name in every command. `--out` said it
    before (and still does, for one release, unlisted) where `report --out` is the report's
    own directory."""
    parser.add_argument("--runs", default=DEFAULT_RUNS, metavar="DIR",
                        help=f"where run directories live (default: {DEFAULT_RUNS})")
    parser.add_argument("--out", dest="runs", metavar="DIR", help=argparse.SUPPRESS)


def versions() -> dict[str, str]:
    """What a run was made with (stored with the run and with every checkpoint)."""
    import duckdb
    import numpy as np
    import pymoo  # type: ignore[import-untyped]
    import ray

    return {"python": platform.python_version(), "pymoo": pymoo.__version__, "ray": ray.__version__,
            "duckdb": duckdb.__version__, "numpy": np.__version__}


def new_run_id(name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


def create_run(resolved: Resolved, runs_root: Path, *, run_id: str | None = None) -> tuple[str, Path]:
    """Make `runs_root/<run_id>/` with a fresh store holding the run's row."""
    cfg = resolved.config
    run_id = run_id or new_run_id(cfg.name)
    run_dir = runs_root / run_id
    if run_dir.exists():
        raise EvolveError(f"{run_dir}: already exists; pick another run id or --resume it")
    run_dir.mkdir(parents=True)
    rows = [SpeciesRow(p.name, p.population.size,
                       [{"metric": o.metric, "direction": o.direction, "ref": o.ref} for o in p.objectives],
                       [{"metric": c.metric, "le": c.le, "ge": c.ge, "eq": c.eq} for c in p.constraints],
                       sc.params)
            for p, sc in zip(resolved.parts, cfg.species_list)]
    # runs.objectives/constraints: the one species' as they are; in a run of several, everyone's,
    # each marked with its species (the store's documented format)
    several = len(rows) > 1
    mark: Callable[[SpeciesRow], dict[str, str]] = (lambda r: {"species": r.species}) if several else (lambda r: {})
    names = ", ".join(p.name for p in resolved.parts)
    sizes = ", ".join(f"{p.name} {p.population.size}" if several else str(p.population.size)
                      for p in resolved.parts)
    with Store.open(run_dir, create=True) as store:
        store.create_run(
            run_id=run_id, name=cfg.name, species=",".join(r.species for r in rows), seed=cfg.seed,
            generations=cfg.generations, objectives=[{**o, **mark(r)} for r in rows for o in r.objectives],
            constraints=[{**c, **mark(r)} for r in rows for c in r.constraints],
            config=cfg.to_json_data(), versions=versions(), parts=rows)
        store.event(run_id, "run_created", f"run {run_id} created (species {names}, "
                                           f"{cfg.generations} generations of {sizes})")
    return run_id, run_dir


def mark_failed(run_dir: Path, run_id: str, exc: BaseException) -> None:
    """After the driver stopped on `exc`: a run still stored as `running` never got going (the
    engine marks a run it ran `interrupted` itself), so it is stored as `failed`, with the
    reason as an event. Best effort: the error being raised is the one to report."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    try:
        with Store.open(run_dir) as store:
            if store.run()["status"] == "running":
                status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                store.event(run_id, f"run_{status}", f"run {run_id} {status} before it started: {reason}")
                store.set_status(run_id, status)
    except Exception:  # noqa: BLE001 - the error being raised is the one to report
        pass


def say_live(store: Store) -> None:
    """On stderr (stdout may be JSON, CSV or a table), one line when what was read is a live
    run's published copy: which generation it shows."""
    note = store.live_note()
    if note:
        print(note, file=sys.stderr)


def find_run(runs_root: Path, ref: str) -> Path:
    """A run directory from a run id (under `runs_root`) or a path."""
    for candidate in (Path(ref), runs_root / ref):
        if (candidate / "store.duckdb").exists():
            return candidate
    raise EvolveError(f"no run {ref!r}: neither {ref} nor {runs_root / ref} holds a store.duckdb")


# Settings a resumed run may change: they limit what the run spends, not what it searches.
MAY_CHANGE = ("budget",)


def check_same_config(stored: Mapping[str, object], current: Mapping[str, object], run_id: str) -> None:
    """A resumed run must use the config it started with, but for its budget (raised to go
    on after a budget stopped it); name the first difference."""
    stored = _with_defaults(stored)
    diff = _first_difference({k: v for k, v in stored.items() if k not in MAY_CHANGE},
                             {k: v for k, v in current.items() if k not in MAY_CHANGE}, "")
    if diff:
        raise EvolveError(f"the config differs from the one run {run_id} started with ({diff}); "
                          "resume with the original config")


def _with_defaults(stored: Mapping[str, object]) -> Mapping[str, object]:
    """The stored config with the defaults of settings added since it was written (a run
    from before them resumes as it ran); as stored when it no longer reads."""
    from pydantic import ValidationError

    from evolve.config import RunConfig

    try:
        return RunConfig.model_validate(dict(stored)).to_json_data()
    except ValidationError:
        return stored


def _first_difference(a: object, b: object, path: str) -> str | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if a != b:
        return f"{path}: {a!r} then, {b!r} now"
    return None
