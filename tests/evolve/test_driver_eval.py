"""`evaluation.actors: 0`: a cheap, pure species evaluated in the driver, with everything else
(store, checkpoints, resume, selection) as on actors; and the engine's faster paths give the
same results as the plain ones."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.cadence import Cadence
from evolve.config import parse_config, resolve
from evolve.errors import EvolveError
from evolve.loop import run_evolution
from evolve.runs import create_run
from evolve.store import (
    EvaluationRow,
    FrontRow,
    GenerationRecord,
    GenerationRow,
    IndividualRow,
    Store,
)

pytestmark = [pytest.mark.ray]


def _config(actors: int, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "drv", "seed": 3, "generations": 6,
        "species": {"name": "numeric", "params": {"problem": "zdt1", "n_var": 10}},
        "population": {"size": 16},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
        "evaluation": {"timeout": 30, "actors": actors},
    }
    data.update(over)
    return data


def _snapshot(run_dir: Path) -> tuple[list[tuple[Any, ...]], ...]:
    with Store.open(run_dir, read_only=True) as store:
        return (store.query("SELECT individual_id, hash, genome, parents, seed, origin FROM individuals ORDER BY 1"),
                store.query("SELECT individual_id, status, objectives, metrics, cv, feasible "
                            "FROM evaluations ORDER BY 1"),
                store.query("SELECT generation, individual_id, rank, crowding FROM fronts ORDER BY 1, 2"),
                store.query("SELECT generation, hypervolume, evaluations, population, front_size "
                            "FROM generations ORDER BY 1"))


def _run(root: Path, run_id: str, data: dict[str, Any], **kw: Any) -> Path:
    resolved = resolve(parse_config(data))
    _, run_dir = create_run(resolved, root, run_id=run_id)
    run_evolution(resolved, run_id, run_dir, **kw)
    return run_dir


def test_evaluating_in_the_driver_gives_the_run_the_actors_give(ray_local: object, tmp_path: Path) -> None:
    on_actors = _run(tmp_path, "actors", _config(2))
    in_driver = _run(tmp_path, "driver", _config(0))
    assert _snapshot(in_driver) == _snapshot(on_actors)
    with Store.open(in_driver, read_only=True) as store:
        assert store.query("SELECT count(*), count(DISTINCT individual_id) FROM evaluations")[0] == (16 * 6, 16 * 6)
        placed = store.query("SELECT message FROM events WHERE kind = 'actors_placed'")
        assert placed == [("numeric: evaluated in the driver (evaluation.actors: 0)",)]
        assert store.run()["status"] == "finished"


def test_a_driver_evaluated_run_resumes_as_if_never_stopped(ray_local: object, tmp_path: Path) -> None:
    from evolve import loop

    class StopAt(loop.Observer):
        def generation_started(self, generation: int, size: int, reused: int) -> None:
            if generation == 3:
                raise KeyboardInterrupt

    resolved = resolve(parse_config(_config(0)))
    _, run_dir = create_run(resolved, tmp_path, run_id="stopped")
    with pytest.raises(KeyboardInterrupt):  # no checkpoint before the end: generations 0..2 are replayed
        run_evolution(resolved, "stopped", run_dir, observer=StopAt(), cadence=Cadence(checkpoint_every=math.inf))
    with Store.open(run_dir, read_only=True) as store:
        assert store.last_generation("stopped") == 2 and store.checkpoint("stopped") is None
    run_evolution(resolved, "stopped", run_dir)
    assert _snapshot(run_dir) == _snapshot(_run(tmp_path, "straight", _config(0)))


def test_a_checkpoint_from_another_pymoo_is_set_aside_and_the_run_replayed(tmp_path: Path) -> None:
    from evolve import loop

    class StopAt(loop.Observer):
        def generation_started(self, generation: int, size: int, reused: int) -> None:
            if generation == 3:
                raise KeyboardInterrupt

    def stopped(run_id: str) -> Path:
        resolved = resolve(parse_config(_config(0)))
        _, run_dir = create_run(resolved, tmp_path, run_id=run_id)
        with pytest.raises(KeyboardInterrupt):  # checkpointed after every generation: the last is 2
            run_evolution(resolved, run_id, run_dir, observer=StopAt(), cadence=Cadence(checkpoint_every=0.0))
        with Store.open(run_dir, read_only=True) as store:
            saved = store.checkpoint(run_id)
            assert saved is not None and saved.generation == 3
        return run_dir

    def events(run_dir: Path) -> list[tuple[str, str]]:
        with Store.open(run_dir, read_only=True) as store:
            return store.query("SELECT kind, message FROM events WHERE kind IN ('replayed', 'checkpoint_skipped') "
                               "ORDER BY event_id")

    same = stopped("same")
    run_evolution(resolve(parse_config(_config(0))), "same", same)
    assert events(same) == []  # resumed from its checkpoint: nothing to replay

    other = stopped("other")
    with Store.open(other) as store:
        store.con.execute("""UPDATE checkpoints SET versions = json_object('pymoo', '0.0.0')""")
    run_evolution(resolve(parse_config(_config(0))), "other", other)
    assert [kind for kind, _ in events(other)] == ["checkpoint_skipped", "replayed"]
    assert "written by pymoo 0.0.0" in events(other)[0][1]
    assert events(other)[1][1] == "generations 0..2 replayed from the store (no evaluation repeated)"
    assert _snapshot(other) == _snapshot(same) == _snapshot(_run(tmp_path, "straight", _config(0)))


def test_only_species_that_declare_it_may_be_evaluated_in_the_driver() -> None:
    tower = _config(0, species={"name": "tower", "params": {"depth": 2}},
                    objectives=[{"metric": "bytes_convergence", "direction": "max", "ref": 0.0},
                                {"metric": "syntax_ratio@h2", "direction": "max", "ref": 0.0}])
    with pytest.raises(EvolveError, match=r"config: evaluation\.actors: 0 \(evaluate in the driver\) is only for "
                                          r"species whose evaluation is cheap and pure"):
        resolve(parse_config(tower))
    with pytest.raises(EvolveError, match=r"evaluation\.actors: must be >= 0 \(got -1\)"):
        parse_config(_config(-1))
    assert resolve(parse_config(_config(0))).parts[0].evaluation.actors == 0


def test_constant_columns_are_bound_once_and_stored_alike(tmp_path: Path) -> None:
    store = Store.open(tmp_path, create=True)
    store.create_run(run_id="r", name="t", species="numeric", seed=1, generations=2,
                     objectives=[{"metric": "f1", "direction": "min", "ref": 1.0}], constraints=[],
                     config={}, versions={})

    def rec(g: int, ids: list[str], parents: list[list[str]]) -> GenerationRecord:
        return GenerationRecord(
            GenerationRow(g, "numeric", None, len(ids), 0, 0, len(ids), len(ids), 0.1),
            individuals=[IndividualRow(i, "numeric", g, f"h{i}", "[0.5]", p, 2**63 + 1, "sample")
                         for i, p in zip(ids, parents)],
            evaluations=[EvaluationRow(i, g, "ok", [0.5], "{}", [], 0.0, True, None, 0.1, "n", None, None, 1, 0,
                                       None, None) for i in ids],
            fronts=[FrontRow(g, i, 0, None) for i in ids])

    store.commit_generations("r", [rec(0, ["a"], [[]]), rec(1, ["b", "c"], [["a"], ["a"]])])
    store.commit_generations("r", [rec(2, ["d", "e"], [[], ["b", "c"]])])
    assert store.query("SELECT individual_id, parents, seed, genome FROM individuals ORDER BY 1") == [
        ("a", [], 2**63 + 1, "[0.5]"), ("b", ["a"], 2**63 + 1, "[0.5]"), ("c", ["a"], 2**63 + 1, "[0.5]"),
        ("d", [], 2**63 + 1, "[0.5]"), ("e", ["b", "c"], 2**63 + 1, "[0.5]")]
    assert store.query("SELECT DISTINCT objectives, constraints, note, artifact, crowding "
                       "FROM evaluations JOIN fronts USING (run_id, individual_id)") == [([0.5], [], None, None, None)]
    store.close()


def test_the_faster_survival_selects_what_pymoos_selects() -> None:
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.population import Population
    from pymoo.core.problem import Problem
    from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
    from pymoo.problems.static import StaticProblem

    from evolve.selection import FastRankAndCrowding

    rng = np.random.default_rng(4)
    problem = Problem(n_var=1, n_obj=2, n_ieq_constr=2)
    for trial in range(20):
        n = 40
        G = np.zeros((n, 2))
        bad = rng.random(n) < (0.1 * (trial % 10))
        G[bad, 0] = rng.choice([1.0e6, 3.0, 0.5], size=int(bad.sum()))
        pop = Evaluator().eval(StaticProblem(problem, F=rng.random((n, 2)).round(1), G=G),
                               Population.new("X", np.zeros((n, 1))))
        ours = FastRankAndCrowding().do(problem, pop, n_survive=20, random_state=np.random.default_rng(trial))
        theirs = RankAndCrowding().do(problem, pop, n_survive=20, random_state=np.random.default_rng(trial))
        assert [id(i) for i in ours] == [id(i) for i in theirs]


def test_a_driver_pool_evaluates_beside_actor_pools(ray_local: object) -> None:
    from evolve.actors import EvaluatorPool
    from evolve.pools import DriverPool, evaluate_together
    from populations.base import EvalItem
    from populations.numeric import NumericSpecies

    species = NumericSpecies("zdt1", n_var=5)
    genomes = species.sample(12, np.random.default_rng(1))
    on_actor = [EvalItem(f"a{k}", g, species.hash(g), k) for k, g in enumerate(genomes[:6])]
    in_driver = [EvalItem(f"d{k}", g, species.hash(g), k) for k, g in enumerate(genomes[6:])]
    actors = EvaluatorPool(species, run_id="t", n_actors=1, timeout=10)
    driver = DriverPool(species, run_id="t", timeout=10)
    try:
        actors.wait_ready()
        driver.wait_ready()
        got = {o.individual_id: (pool, o) for pool, o in evaluate_together([(actors, on_actor), (driver, in_driver)])}
    finally:
        actors.close()
        driver.close()
    assert sorted(got) == sorted(it.individual_id for it in on_actor + in_driver)
    assert all(o.status == "ok" and set(o.metrics) == {"f1", "f2"} for _, o in got.values())
    assert {id(pool) for k, (pool, _) in got.items() if k.startswith("d")} == {id(driver)}
    direct = {it.individual_id: o.metrics for it, o in zip(in_driver, species.evaluate(
        in_driver, workdir=Path("."), timeout=10, run_id="t"))}
    assert {k: o.metrics for k, (_, o) in got.items() if k.startswith("d")} == direct


def test_a_species_error_in_the_driver_is_a_failed_outcome_with_its_reason() -> None:
    from evolve.pools import DriverPool
    from populations.base import EvalItem
    from tests.evolve.slow_species import SlowNumeric

    species = SlowNumeric(delay=0.0, error=["x"], problem="zdt1", n_var=5)
    pool = DriverPool(species, run_id="t", timeout=10)
    g = species.sample(1, np.random.default_rng(0))[0]
    (out,) = list(pool.evaluate([EvalItem("x", g, species.hash(g), 0)]))
    pool.close()
    assert (out.individual_id, out.status, out.error) == ("x", "failed", "ValueError: no such thing")
