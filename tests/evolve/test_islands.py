"""Islands: populations side by side migrating their best along a ring — the island of
every individual stored, fronts per island and overall, deterministic for a seed, and a
killed run resumes (from a checkpoint or replaying from the start) to the straight one."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.cadence import Cadence
from evolve.cli import main
from evolve.config import parse_config, resolve
from evolve.errors import EvolveError
from evolve.loop import Observer, run_evolution
from evolve.runs import create_run
from evolve.store import Store

ISLANDS, POP, GENS = 3, 6, 6


def _config(seed: int = 1, **islands: object) -> dict[str, Any]:
    return {"name": "isl", "seed": seed, "generations": GENS,
            "species": {"name": "numeric", "params": {"problem": "zdt1", "n_var": 5}},
            "population": {"size": POP},
            "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
            "evaluation": {"actors": 0}, "islands": {"count": ISLANDS, "interval": 2, "migrants": 2, **islands}}


class StopAt(Observer):
    def generation_started(self, generation: int, size: int, reused: int) -> None:
        if generation == 4:
            raise KeyboardInterrupt


def _run(root: Path, run_id: str, data: dict[str, Any], *, stop: bool = False,
         cadence: Cadence | None = None) -> Path:
    resolved = resolve(parse_config(data))
    _, run_dir = create_run(resolved, root, run_id=run_id)
    if stop:
        with pytest.raises(KeyboardInterrupt):
            run_evolution(resolved, run_id, run_dir, observer=StopAt(), cadence=cadence)
    run_evolution(resolved, run_id, run_dir)
    return run_dir


def _tables(run_dir: Path) -> tuple[list[tuple[Any, ...]], ...]:
    with Store.open(run_dir, read_only=True) as store:
        return tuple(store.query(f"SELECT * EXCLUDE (run_id) FROM {t} ORDER BY ALL")
                     for t in ("individuals", "islands", "island_fronts", "migrations", "fronts"))


def _dominated(F: np.ndarray) -> int:
    return sum(bool(np.any(np.all(np.delete(F, i, 0) <= F[i], 1) & np.any(np.delete(F, i, 0) < F[i], 1)))
               for i in range(len(F)))


def test_islands_migrate_along_a_ring_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    straight = _run(tmp_path, "straight", _config())
    with Store.open(straight, read_only=True) as store:
        born = store.query("SELECT island, count(*), count(*) FILTER (WHERE starts_with(individual_id, "
                           "'i' || island || '-')) FROM islands GROUP BY 1 ORDER BY 1")
        assert born == [(k, POP * GENS, POP * GENS) for k in range(ISLANDS)]
        moves = store.query("SELECT generation, individual_id, from_island, to_island FROM migrations")
        assert {g for g, _, _, _ in moves} == {1, 3}  # every 2 generations, never after the last
        assert all(dst == (src + 1) % ISLANDS for _, _, src, dst in moves)
        assert all(ind.startswith("i") for _, ind, _, _ in moves) and len(moves) <= 2 * ISLANDS * 2
        # a migrant is one of its island's best, and its new island keeps the good ones
        arrived = store.query("""SELECT count(*) FROM migrations m JOIN island_fronts f
                                 ON f.generation = m.generation + 1 AND f.island = m.to_island
                                 AND f.individual_id = m.individual_id""")[0][0]
        assert arrived >= 1
        # fronts per island (own ranks) and overall (over the union of the islands)
        for g in range(GENS):
            union = {r[0]: np.array(r[1]) for r in store.query(
                """SELECT DISTINCT f.individual_id, e.objectives FROM island_fronts f
                   JOIN evaluations e USING (run_id, individual_id) WHERE f.generation = ?""", [g])}
            overall = [r[0] for r in store.query("SELECT individual_id FROM fronts WHERE generation = ? AND rank = 0",
                                                 [g])]
            assert set(overall) <= set(union) and len(overall) >= 1
            assert _dominated(np.array([union[i] for i in overall])) == 0
            others = [union[i] for i in union if i not in overall]
            assert all(any(np.all(union[o] <= x) and np.any(union[o] < x) for o in overall) for x in others)
            for k in range(ISLANDS):
                mine = np.array([r[0] for r in store.query(
                    """SELECT e.objectives FROM island_fronts f JOIN evaluations e USING (run_id, individual_id)
                       WHERE f.generation = ? AND f.island = ? AND f.rank = 0""", [g, k])])
                assert len(mine) >= 1 and _dominated(mine) == 0
        hv = [r[0] for r in store.query("SELECT hypervolume FROM generations ORDER BY generation")]
        assert all(b >= a - 1e-12 for a, b in zip(hv, hv[1:]))  # elitist on every island: never worse
    monkeypatch.setenv("COLUMNS", "200")  # the status line unwrapped
    assert main(["status", str(straight)]) == 0
    shown = capsys.readouterr().out
    assert "3, migrating 2 every 2 generation(s) along a ring; fronts: i0" in shown
    # each island's own front, and the whole run's
    assert main(["fronts", str(straight), "--island", "1", "--format", "json"]) == 0
    island = [json.loads(line)["individual_id"] for line in capsys.readouterr().out.splitlines()]
    with Store.open(straight, read_only=True) as store:
        assert island == [r[0] for r in store.query("""SELECT individual_id FROM island_fronts
                                                        WHERE generation = ? AND island = 1 AND rank = 0
                                                        ORDER BY 1""", [GENS - 1])]
    assert main(["fronts", str(straight)]) == 0
    assert "Pareto front of straight" in capsys.readouterr().out
    assert main(["fronts", str(straight), "--island", "3"]) == 2
    assert capsys.readouterr().err == "evolve: error: run straight has no island 3 (islands: 0..2)\n"

    # deterministic for a seed; another seed, another run
    assert _tables(_run(tmp_path, "again", _config())) == _tables(straight)
    assert _tables(_run(tmp_path, "other", _config(seed=2)))[0] != _tables(straight)[0]
    # killed in generation 4 and resumed: from a checkpoint, and replaying every generation
    assert _tables(_run(tmp_path, "checkpointed", _config(), stop=True, cadence=Cadence(checkpoint_every=0))) \
        == _tables(straight)
    assert _tables(_run(tmp_path, "replayed", _config(), stop=True, cadence=Cadence(checkpoint_every=math.inf))) \
        == _tables(straight)


@pytest.mark.parametrize(("change", "line"), [
    ({"islands": {"count": 2, "migrants": 7}}, "islands.migrants: must be <= population.size (7 > 6): an island "
                                               "holds 6"),
    ({"islands": {"count": 0}}, "islands.count: must be >= 1 (got 0)"),
    ({"islands": {"count": 2, "interval": 0}}, "islands.interval: must be >= 1 (got 0)"),
    ({"evaluation": {"actors": 0, "replicates": 2}},
     "evaluation.replicates: re-evaluation and islands do not go together yet; set one of them to 1 "
     "(islands.count or replicates)"),
])
def test_contradictory_islands_are_one_line(change: dict[str, Any], line: str) -> None:
    with pytest.raises(EvolveError) as err:
        resolve(parse_config({**_config(), **change}))
    assert str(err.value) == f"config: {line}"
