"""A genome the run has evaluated before (with the same context) is not evaluated again: its
result is kept under the new individual, marked with whose it is — also across a resume."""
from __future__ import annotations

from pathlib import Path

from evolve.config import parse_config, resolve
from evolve.loop import run_evolution
from evolve.runs import create_run
from evolve.store import Store


def _config(generations: int) -> dict[str, object]:
    return {"name": "grid", "seed": 4, "generations": generations, "population": {"size": 4},
            "species": {"name": "tests.evolve.grid_species:GridNumeric"},
            "evaluation": {"actors": 0}}


def _run(tmp_path: Path, generations: int, run_id: str = "grid") -> Path:
    resolved = resolve(parse_config(_config(generations)))
    run_dir = tmp_path / run_id
    if not run_dir.exists():
        _, run_dir = create_run(resolved, tmp_path, run_id=run_id)
    run_evolution(resolved, run_id, run_dir)
    return run_dir


def _rows(run_dir: Path) -> list[tuple[str, str, int, str | None, list[float]]]:
    with Store.open(run_dir, read_only=True) as store:
        return [(r[0], r[1], r[2], r[3], list(r[4])) for r in store.query(
            """SELECT e.individual_id, i.hash, e.generation, e.reused_from, e.objectives
               FROM evaluations e JOIN individuals i USING (run_id, individual_id) ORDER BY e.individual_id""")]


def test_a_genome_is_evaluated_once_and_its_copies_say_whose_result_they_hold(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, 12)
    rows = _rows(run_dir)
    evaluated = [r for r in rows if r[3] is None]
    copies = [r for r in rows if r[3] is not None]
    assert copies, "the grid makes genomes again: some must have been reused"
    assert len({r[1] for r in evaluated}) == len(evaluated) <= 25  # each genome evaluated once
    first = {r[0]: r for r in evaluated}
    for _, hash_, gen, source, objectives in copies:
        assert first[source][1] == hash_ and first[source][2] < gen  # an earlier evaluation of this genome
        assert first[source][4] == objectives
    with Store.open(run_dir, read_only=True) as store:
        counts = store.query("SELECT sum(duplicates), sum(evaluations), count(*) FROM generations")[0]
        events = store.query("SELECT count(*) FROM events WHERE kind = 'duplicates'")[0][0]
    assert counts[0] == len(copies) and counts[1] == len(evaluated) and events >= 1


def test_a_resumed_run_reuses_what_earlier_sessions_evaluated(tmp_path: Path) -> None:
    _run(tmp_path, 4, "resumed")
    before = {r[1] for r in _rows(tmp_path / "resumed") if r[3] is None}
    run_evolution(resolve(parse_config(_config(12))), "resumed", tmp_path / "resumed")  # the run, on
    rows = _rows(tmp_path / "resumed")
    later = [r for r in rows if r[2] >= 4]
    again = [r for r in later if r[1] in before]
    assert again and all(r[3] is not None for r in again)  # none of those evaluated again
    assert len({r[1] for r in rows if r[3] is None}) == len([r for r in rows if r[3] is None])
