"""Re-evaluation with guardrails on a noisy objective: front members evaluated again, each
replicate stored, means and spreads reported, challengers pending until they have the
samples and the margin, failures counted; a resumed run is the straight one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.cli import main
from evolve.config import parse_config, resolve
from evolve.errors import EvolveError
from evolve.loop import Observer, run_evolution
from evolve.runs import create_run
from evolve.store import Store

NOISY = "tests.evolve.noisy_species:NoisyNumeric"


def _config(**evaluation: object) -> dict[str, Any]:
    return {"name": "rep", "seed": 1, "generations": 6,
            "species": {"name": NOISY, "params": {"noise": 0.2, "problem": "zdt1", "n_var": 5}},
            "population": {"size": 8},
            "objectives": [{"metric": "f1", "ref": 2.0}, {"metric": "f2", "ref": 12.0}],
            "evaluation": {"actors": 0, "replicates": 3, "min_samples": 3, "min_delta": 0.05, **evaluation}}


def _run(root: Path, run_id: str, data: dict[str, Any], observer: Observer | None = None) -> Path:
    resolved = resolve(parse_config(data))
    _, run_dir = create_run(resolved, root, run_id=run_id)
    run_evolution(resolved, run_id, run_dir, observer=observer)
    return run_dir


def _tables(run_dir: Path) -> tuple[list[tuple[Any, ...]], ...]:
    with Store.open(run_dir, read_only=True) as store:
        return tuple(store.query(f"SELECT * EXCLUDE ({drop}) FROM {t} ORDER BY ALL")
                     for t, drop in (("individuals", "run_id"), ("replicates", "run_id, wall_seconds"),
                                     ("standing", "run_id"), ("fronts", "run_id")))


class StopAt(Observer):
    def generation_started(self, generation: int, size: int, reused: int) -> None:
        if generation == 3:
            raise KeyboardInterrupt


def test_front_members_are_sampled_again_and_challengers_wait(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _run(tmp_path, "straight", _config())
    with Store.open(run_dir, read_only=True) as store:
        replicates = store.query("SELECT individual_id, replicate, status FROM replicates ORDER BY 1, 2")
        # replicate k of an individual comes once, in order, at most replicates - 1 of them
        by_ind: dict[str, list[int]] = {}
        for ind, k, status in replicates:
            by_ind.setdefault(ind, []).append(k)
            assert status == "ok"
        assert by_ind and all(ks == list(range(1, len(ks) + 1)) and len(ks) <= 2 for ks in by_ind.values())
        standing = store.query("SELECT generation, individual_id, standing, samples, objectives, spread FROM standing")
        assert {s for _, _, s, _, _, _ in standing} == {"member", "pending"}
        for g, ind, st, n, mean, spread in standing:
            # a member has the samples the guardrail asks; its objectives are their mean
            assert st == "pending" or n >= 3, (g, ind, st, n)
            samples = store.query(
                """SELECT objectives FROM evaluations WHERE individual_id = ? UNION ALL
                   SELECT objectives FROM replicates WHERE individual_id = ? AND generation <= ?""", [ind, ind, g])
            assert len(samples) == n
            values = np.array([s[0] for s in samples])
            assert mean == pytest.approx(values.mean(axis=0).tolist())
            assert spread == pytest.approx((values.std(axis=0, ddof=1) if n > 1 else np.zeros(2)).tolist())
        # a pending challenger displaces no member: a member of one generation still in the
        # population the next is a member again unless a member then dominates its mean
        members = {g: {ind: np.array(mean) for gg, ind, st, _, mean, _ in standing if gg == g and st == "member"}
                   for g in range(6)}
        left = 0
        for g in range(5):
            population = {r[0] for r in store.query("SELECT individual_id FROM fronts WHERE generation = ?", [g + 1])}
            for m in set(members[g]) & population - set(members[g + 1]):
                mine = np.array([r[0] for r in store.query(
                    """SELECT objectives FROM evaluations WHERE individual_id = ? UNION ALL
                       SELECT objectives FROM replicates WHERE individual_id = ? AND generation <= ?""",
                    [m, m, g + 1])]).mean(axis=0)
                assert any(np.all(c <= mine) and np.any(c < mine) for c in members[g + 1].values()), (g, m)
                left += 1
        assert left >= 1  # the check above was exercised
    assert main(["fronts", str(run_dir)]) == 0
    shown = capsys.readouterr().out
    assert "samples" in shown and "member" in shown and "±" in shown
    assert main(["status", str(run_dir)]) == 0
    assert "reported front" in capsys.readouterr().out

    # killed after generation 2, resumed: the same individuals, replicates, standing and fronts
    resolved = resolve(parse_config(_config()))
    _, stopped = create_run(resolved, tmp_path, run_id="stopped")
    with pytest.raises(KeyboardInterrupt):
        run_evolution(resolved, "stopped", stopped, observer=StopAt())
    run_evolution(resolved, "stopped", stopped)
    assert _tables(stopped) == _tables(run_dir)


def test_a_failed_replicate_is_stored_and_counted(tmp_path: Path) -> None:
    data = _config(min_samples=1, min_delta=0.0)
    data["species"]["params"]["fail_replicate"] = 2
    run_dir = _run(tmp_path, "failing", data)
    with Store.open(run_dir, read_only=True) as store:
        failed = store.query("SELECT individual_id, generation, cv FROM replicates WHERE status = 'failed'")
        assert failed and all(cv > 0 for _, _, cv in failed)
        for ind, g, _ in failed:  # its mean is infeasible from then on: never a member again
            assert store.query("""SELECT count(*) FROM standing WHERE individual_id = ? AND generation >= ?
                                  AND standing = 'member'""", [ind, g])[0][0] == 0
        events = store.query("SELECT count(*) FROM events WHERE kind = 'replicate_failed'")[0][0]
        assert events == len(failed)
        # every replicate counts against the evaluations spent
        spent = store.query("SELECT max(evaluations) FROM spend")[0][0]
        assert spent == 8 * 6 + store.query("SELECT count(*) FROM replicates")[0][0]


@pytest.mark.parametrize(("evaluation", "line"), [
    ({"replicates": 0}, "evaluation.replicates: must be >= 1 (got 0)"),
    ({"min_samples": 4}, "evaluation.min_samples: must be <= evaluation.replicates (4 > 3): no individual "
                         "would get that many samples"),
    ({"min_delta": -0.1}, "evaluation.min_delta: must be >= 0.0 (got -0.1)"),
])
def test_contradictory_guardrails_are_one_line(evaluation: dict[str, object], line: str) -> None:
    with pytest.raises(EvolveError) as err:
        resolve(parse_config(_config(**evaluation)))
    assert str(err.value) == f"config: {line}"
