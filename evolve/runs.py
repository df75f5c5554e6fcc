"""Run directories: a new run with its store, finding one again, and the config check on resume.

A run lives in `RUNS/<run_id>/`: `store.duckdb` (see `evolve.store`), `status.json` while
its driver runs, `trajectories/` and `artifacts/` (see `evolve.trajectories`).
"""
from __future__ import annotations

import platform
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from evolve.config import Resolved
from evolve.errors import EvolveError
from evolve.store import SpeciesRow, Store


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


def find_run(runs_root: Path, ref: str) -> Path:
    """A run directory from a run id (under `runs_root`) or a path."""
    for candidate in (Path(ref), runs_root / ref):
        if (candidate / "store.duckdb").exists():
            return candidate
    raise EvolveError(f"no run {ref!r}: neither {ref} nor {runs_root / ref} holds a store.duckdb")


def check_same_config(stored: Mapping[str, object], current: Mapping[str, object], run_id: str) -> None:
    """A resumed run must use the config it started with; name the first difference."""
    diff = _first_difference(stored, current, "")
    if diff:
        raise EvolveError(f"the config differs from the one run {run_id} started with ({diff}); "
                          "resume with the original config")


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
