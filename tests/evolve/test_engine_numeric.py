"""The engine on pymoo's own test problems: as good as pymoo, and deterministic."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.config import parse_config, resolve
from evolve.loop import RunSummary, run_evolution
from evolve.runs import create_run
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


def test_an_interrupted_run_resumes_by_replaying_committed_generations(ray_local: object, tmp_path: Path) -> None:
    import math

    from evolve import loop
    from evolve.cadence import Cadence
    from evolve.errors import EvolveError

    no_checkpoint = Cadence(checkpoint_every=math.inf)  # none before the end: the resume replays it all

    class StopAt(loop.Observer):
        def generation_started(self, generation: int, size: int, reused: int) -> None:
            if generation == 4:
                raise KeyboardInterrupt

    def fresh(run_id: str) -> tuple[Any, Path]:
        resolved = resolve(parse_config({
            "name": "replay", "seed": 9, "generations": 7,
            "species": {"name": "numeric", "params": {"problem": "zdt2", "n_var": 8}},
            "population": {"size": 12}, "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
            "evaluation": {"timeout": 30, "actors": 2}}))
        _, run_dir = create_run(resolved, tmp_path, run_id=run_id)
        return resolved, run_dir

    resolved, run_dir = fresh("stopped")
    with pytest.raises(KeyboardInterrupt):
        run_evolution(resolved, "stopped", run_dir, observer=StopAt(), cadence=no_checkpoint)
    with Store.open(run_dir, read_only=True) as store:
        assert store.last_generation("stopped") == 3 and store.checkpoint("stopped") is None
        assert store.run()["status"] == "interrupted"
    run_evolution(resolved, "stopped", run_dir)  # resume: replays 0..3, evaluates 4..6
    with Store.open(run_dir, read_only=True) as store:
        replayed = store.query("SELECT message FROM events WHERE kind = 'replayed'")
        assert replayed == [("generations 0..3 replayed from the store (no evaluation repeated)",)]

    ref, ref_dir = fresh("straight")
    run_evolution(ref, "straight", ref_dir)
    assert _snapshot(run_dir) == _snapshot(ref_dir)

    # a store whose history does not replay is refused with the reason
    resolved, bad_dir = fresh("tampered")
    with pytest.raises(KeyboardInterrupt):
        run_evolution(resolved, "tampered", bad_dir, observer=StopAt(), cadence=Cadence(checkpoint_every=math.inf))
    with Store.open(bad_dir) as store:
        store.con.execute("UPDATE individuals SET hash = 'x' WHERE individual_id = 'g002-003'")
    with pytest.raises(EvolveError, match="replaying generation 2 does not give the stored individuals"):
        run_evolution(resolved, "tampered", bad_dir)
