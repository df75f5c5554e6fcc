"""Evaluator actors: a dead actor is replaced and its work resubmitted; overdue work is killed."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from evolve.actors import EvaluatorPool
from evolve.config import parse_config, resolve
from evolve.loop import Engine, Observer
from evolve.runs import create_run
from evolve.store import Store
from populations.base import EvalItem
from tests.evolve.slow_species import SlowNumeric

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _items(species: SlowNumeric, ids: list[str]) -> list[EvalItem]:
    import numpy as np

    genomes = species.sample(len(ids), np.random.default_rng(0))
    return [EvalItem(i, g, species.hash(g), 0) for i, g in zip(ids, genomes)]


def test_an_actor_killed_mid_evaluation_is_replaced_and_the_evaluation_stored_once(
        ray_local: object, slow_species_by_value: None, tmp_path: Path) -> None:
    resolved = resolve(parse_config({
        "name": "kill", "seed": 3, "generations": 2, "population": {"size": 4},
        "species": {"name": "tests.evolve.slow_species:SlowNumeric",
                    "params": {"delay": 1.5, "problem": "zdt1", "n_var": 5}},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
        "evaluation": {"timeout": 30, "retries": 2, "grace": 10}}))
    species = resolved.parts[0].species
    run_id, run_dir = create_run(resolved, tmp_path, run_id="kill")
    killed: list[int] = []

    with Store.open(run_dir) as store:
        engine = Engine(resolved, run_id, run_dir, store)
        pool = EvaluatorPool(species, run_id=run_id, n_actors=2, timeout=30, retries=2, grace=10,
                             on_event=engine.pool_events(species.name))

        class KillOnce(Observer):
            def generation_started(self, generation: int, size: int, reused: int) -> None:
                if generation == 0:  # the first actor's process dies 0.5 s into its 1.5 s with g000-000
                    victim = pool.placements[0]["pid"]
                    threading.Timer(0.5, lambda: (os.kill(victim, signal.SIGKILL), killed.append(victim))).start()

        engine.observer = KillOnce()
        try:
            pool.wait_ready()
            engine.run([pool])
        finally:
            pool.close()
        assert killed and pool.replaced == 1
        rows = store.query("SELECT individual_id, status, attempts FROM evaluations ORDER BY 1")
        assert len(rows) == len({r[0] for r in rows}) == 8
        assert all(status == "ok" for _, status, _ in rows)
        assert [r[0] for r in rows if r[2] == 2] == ["g000-000"]
        kinds = [r[0] for r in store.query("SELECT kind FROM events ORDER BY event_id")]
        assert kinds.count("actor_died") == 1 and kinds.count("retry") == 1 and "actor_replaced" in kinds
        assert store.query("SELECT count(*) FROM individuals")[0][0] == 8


def test_crashes_beyond_the_retries_and_hangs_become_failed_and_timeout_results(
        ray_local: object, slow_species_by_value: None) -> None:
    species = SlowNumeric(delay=0.1, crash=["crash"], hang=["hang"], problem="zdt1", n_var=5)
    events: list[tuple[str, str]] = []
    # grace covers a replacement actor's start-up on a loaded machine
    pool = EvaluatorPool(species, run_id="t", n_actors=2, timeout=1.0, retries=1, grace=8.0,
                         on_event=lambda kind, msg, ind: events.append((kind, msg)))
    try:
        pool.wait_ready()
        outs = {o.individual_id: o for o in pool.evaluate(_items(species, ["a", "crash", "hang", "b"]))}
    finally:
        pool.close()
    assert sorted(outs) == ["a", "b", "crash", "hang"]
    assert outs["a"].status == outs["b"].status == "ok" and outs["a"].node
    assert outs["crash"].status == "failed" and outs["crash"].attempts == 2
    assert "evaluation failed 2 time(s)" in (outs["crash"].error or "")
    assert "ActorDiedError" in (outs["crash"].error or "")
    assert outs["hang"].status == "timeout" and "no result within 9s" in (outs["hang"].error or "")
    kinds = [k for k, _ in events]
    assert kinds.count("actor_died") == 2 and kinds.count("retry") == 1 and kinds.count("timeout") == 1
    assert pool.replaced == 3


def test_actors_that_cannot_be_placed_are_a_clear_error(ray_local: object) -> None:
    from evolve.errors import EvolveError
    from populations.numeric import NumericSpecies

    pool = EvaluatorPool(NumericSpecies(), run_id="t", n_actors=3, timeout=1.0)  # 3 actors, 2 CPUs
    try:
        with pytest.raises(EvolveError, match="did not start within 5s"):
            pool.wait_ready(timeout=5)
    finally:
        pool.close(timeout=2)


