"""The engine on pymoo's own test problems: as good as pymoo, and deterministic."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.config import parse_config, resolve
from evolve.loop import RunSummary, create_run, run_evolution
from evolve.store import Store

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _run(root: Path, run_id: str, **over: Any) -> RunSummary:
    data: dict[str, Any] = {
        "name": "num", "seed": 5, "generations": 8,
        "species": {"name": "numeric", "params": {"problem": "zdt1", "n_var": 10}},
        "population": {"size": 24},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
        "evaluation": {"timeout": 30, "actors": 2},
    }
    data.update(over)
    resolved = resolve(parse_config(data))
    rid, run_dir = create_run(resolved, root, run_id=run_id)
    return run_evolution(resolved, rid, run_dir)


def test_zdt1_reaches_99_percent_of_pymoos_hypervolume(ray_local: object, tmp_path: Path) -> None:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.indicators.hv import HV
    from pymoo.optimize import minimize
    from pymoo.problems import get_problem

    pop, gens, seed = 100, 150, 1
    summary = _run(tmp_path, "zdt1", seed=seed, generations=gens, population={"size": pop},
                   species={"name": "numeric", "params": {"problem": "zdt1"}},
                   objectives=[{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 1.1}])
    assert summary.status == "finished" and summary.generations == gens
    res = minimize(get_problem("zdt1"), NSGA2(pop_size=pop), ("n_gen", gens), seed=seed, verbose=False)
    reference = HV(ref_point=np.array([1.1, 1.1]))(res.F)
    engine = summary.hypervolume[-1]
    assert engine is not None and engine >= 0.99 * reference, (engine, reference)

    with Store.open(summary.run_dir, read_only=True) as store:
        # the stored hypervolume is the HV of the stored front's objectives
        F = np.array([r[0] for r in store.query("SELECT objectives FROM pareto_front")])
        assert HV(ref_point=np.array([1.1, 1.1]))(F) == pytest.approx(engine)
        n_ind, n_eval, n_distinct = store.query(
            "SELECT (SELECT count(*) FROM individuals), count(*), count(DISTINCT individual_id) FROM evaluations")[0]
        assert n_ind == n_eval == n_distinct == pop * gens
        hv = [r[0] for r in store.query("SELECT hypervolume FROM generations ORDER BY generation")]
        assert hv == summary.hypervolume and hv[-1] > hv[gens // 2] > 0


def _snapshot(run_dir: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with Store.open(run_dir, read_only=True) as store:
        individuals = store.query("SELECT individual_id, hash, parents, seed, origin FROM individuals ORDER BY 1")
        front = store.query("SELECT individual_id, objectives FROM pareto_front ORDER BY 1")
    return individuals, front


def test_the_same_seed_twice_gives_the_same_run_and_front(ray_local: object, tmp_path: Path) -> None:
    a = _snapshot(_run(tmp_path, "a").run_dir)
    b = _snapshot(_run(tmp_path, "b").run_dir)
    c = _snapshot(_run(tmp_path, "c", seed=6).run_dir)
    assert a == b
    assert len(a[1]) >= 2
    assert a[0] != c[0] and a[1] != c[1]


def test_nsga3_on_a_three_objective_problem(ray_local: object, tmp_path: Path) -> None:
    summary = _run(tmp_path, "dtlz2", generations=5, population={"size": 16},
                   species={"name": "numeric", "params": {"problem": "dtlz2", "n_var": 7, "n_obj": 3}},
                   algorithm={"name": "nsga3", "partitions": 4},
                   objectives=[{"metric": f"f{k}", "ref": 2.5} for k in (1, 2, 3)])
    assert summary.generations == 5
    assert all(hv is not None and hv > 0 for hv in summary.hypervolume)
    with Store.open(summary.run_dir, read_only=True) as store:
        assert store.query("SELECT count(*) FROM pareto_front")[0][0] >= 3
        assert store.query("SELECT count(*) FROM evaluations")[0][0] == 16 * 5
