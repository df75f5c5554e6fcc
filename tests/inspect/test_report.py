"""`evolve report` and `evolve export` on a real run's store; the HTML rendered in Chromium."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

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
