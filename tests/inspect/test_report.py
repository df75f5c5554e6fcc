"""`evolve report` and `evolve export` on a real run's store; the HTML rendered in Chromium."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from evolve.store import (
    EvaluationRow,
    FrontRow,
    GenerationRecord,
    GenerationRow,
    IndividualRow,
    SpeciesRow,
    Store,
)
from tests.inspect.conftest import evolve

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.tmux]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


def test_report_writes_pngs_and_a_page_that_renders_in_chromium(tower_run: Path, short_tmp: Path) -> None:
    out = short_tmp / "report"
    r = evolve("report", str(tower_run), "--out", str(out))
    assert r.returncode == 0, r.stderr
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "hypervolume.png" in pngs and "pareto_0_1.png" in pngs and "lineage.png" in pngs
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    page = (out / "report.html").read_text()
    assert "src=\"http" not in page and "href=\"http" not in page  # self-contained
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by the test set-up"
    profile = short_tmp / "profile"
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                          (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = re.search(r'data-plots-rendered="(\d+)"', dom.stdout)
    assert rendered and int(rendered.group(1)) == len(pngs)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    shot = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1200,1800",
                           f"--screenshot={out / 'screenshot.png'}", (out / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert shot.returncode == 0 and (out / "screenshot.png").stat().st_size > 20000


def test_report_lineage_of_a_chosen_individual_and_errors(tower_run: Path, short_tmp: Path) -> None:
    with duckdb.connect(str(tower_run / "store.duckdb"), read_only=True) as con:
        child = con.execute("SELECT individual_id FROM individuals WHERE len(parents) > 0 LIMIT 1").fetchone()
    assert child is not None
    r = evolve("report", str(tower_run), "--out", str(short_tmp / "r"), "--individual", child[0])
    assert r.returncode == 0, r.stderr
    r = evolve("report", str(tower_run), "--out", str(short_tmp / "r2"), "--individual", "nobody")
    assert r.returncode == 2 and "no individual 'nobody'" in r.stderr
    r = evolve("report", str(short_tmp / "nothing"), "--out", str(short_tmp / "r3"))
    assert r.returncode == 2 and "no run" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_export_writes_every_table_as_parquet(tower_run: Path, short_tmp: Path) -> None:
    out = short_tmp / "pq"
    r = evolve("export", str(tower_run), "--parquet", str(out))
    assert r.returncode == 0, r.stderr
    with duckdb.connect(str(tower_run / "store.duckdb"), read_only=True) as con:
        for table in ("runs", "individuals", "evaluations", "fronts", "generations", "events"):
            stored = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            exported = duckdb.execute(f"SELECT count(*) FROM read_parquet('{out / (table + '.parquet')}')").fetchone()
            assert stored == exported and stored is not None


def _synthetic_run(runs: Path) -> Path:
    """A numeric run written through the store's own API: 30 generations of 20, each child of
    two of the generation before; in the last, 14 infeasible individuals on one spot and 5
    timeouts."""
    run = runs / "synthetic"
    run.mkdir(parents=True)
    objectives = [{"metric": "f1", "direction": "min", "ref": 2.0}, {"metric": "f2", "direction": "min", "ref": 2.0}]
    with Store.open(run, create=True) as store:
        store.create_run(run_id="synthetic", name="synthetic", species="numeric", seed=1, generations=30,
                         objectives=objectives, constraints=[], config={"name": "synthetic"}, versions={},
                         parts=[SpeciesRow("numeric", 20, objectives, [], {})])
        records = []
        for g in range(30):
            ids = [f"g{g:03d}-{k:03d}" for k in range(20)]
            values = {i: [k / 40 + g / 1200, 1 - k / 40] for k, i in enumerate(ids)}
            status = {i: "ok" for i in ids}
            feasible = {i: True for i in ids}
            if g == 29:
                values.update({i: [0.9, 0.9] for i in ids[:14]})  # 14 on one spot...
                status.update({i: "timeout" for i in ids[14:19]})  # ...5 timed out on that spot too
                for i in ids[:14]:
                    feasible[i] = False
            evaluations = [EvaluationRow(i, g, status[i], values[i], "{}", [], 0.0 if feasible[i] else 1.0,
                                         feasible[i] and status[i] == "ok",
                                         None if feasible[i] else "constraint g1 violated by 0.5", 0.1, "", None,
                                         f"no result within {30 + k}.5s; the actor was killed"
                                         if status[i] != "ok" else None, 1, 0, None, None)
                           for k, i in enumerate(ids)]
            front = [FrontRow(g, i, 0, 1.0) for i in ids] + (
                [FrontRow(g, f"g{g - 1:03d}-{k:03d}", 0, 1.0) for k in range(20)] if g else [])
            records.append(GenerationRecord(
                GenerationRow(g, "numeric", 0.5 + g / 100, 20, 0, 0, 20, len(front), 0.1),
                individuals=[IndividualRow(i, "numeric", g, f"h{g}-{k}", "[0.5]",
                                           [f"g{g - 1:03d}-{k:03d}", f"g{g - 1:03d}-{(k + 1) % 20:03d}"] if g else [],
                                           k, "crossover+mutation" if g else "sample") for k, i in enumerate(ids)],
                evaluations=evaluations, fronts=front))
        store.commit_generations("synthetic", records)
    return run


def test_report_counts_overlaps_names_failures_and_caps_what_it_draws(short_tmp: Path) -> None:
    run = _synthetic_run(short_tmp / "runs")
    out = short_tmp / "synthetic-report"
    r = evolve("report", str(run), "--out", str(out), "--individual", "g029-019")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["failures.png", "hypervolume.png", "lineage.png",
                                                        "pareto_0_1.png"]
    page = (out / "report.html").read_text()
    assert page.rindex("<figure") < page.index("<table")  # plots first, tables after
    pareto = page[page.index('id="pareto_0_1"'):page.index("</figure>", page.index('id="pareto_0_1"'))]
    assert "×14" in pareto and "failed (5)" in pareto and "infeasible (14)" in pareto
    assert "10 of 21 front points named" in pareto  # g028 (20) and g029-019: the feasible rank 0
    assert len(re.findall(r">g0\d\d-\d\d\d( \+\d+)?<", pareto)) == 10  # the names drawn
    failures = re.findall(r"<tr><td>([^<]+)</td><td class=n>(\d+)</td></tr>",
                          page[page.index('id="reasons"'):])
    assert failures == [("infeasible: constraint gN violated by N", "14"),
                        ("timeout: no result within Ns", "5")]
    lineage = page[page.index('id="lineage"'):]
    # d steps back it has d + 1 ancestors (20 at most): 409 in all, the nearest 7 steps (35) drawn
    assert "lineage of g029-019: 409 ancestor(s) back to generation 0" in lineage
    assert "the nearest 7 step(s) drawn (35 ancestors)" in lineage
    front = page[page.index('id="front"'):page.index("</table>", page.index('id="front"'))]
    assert front.count("<tr>") == 1 + 21  # one row per distinct point
