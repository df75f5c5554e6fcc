"""`evolve ui`: the dashboard served by a real `evolve ui` process over a real run's store,
driven in headless Chromium (Debian's, through Playwright): every view loads with no console
error, overlapping individuals are counted, a replay plays, a committed generation shows up
without a reload; bad input is one line."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from evolve.errors import EvolveError
from evolve.store import EvaluationRow, FrontRow, GenerationRecord, GenerationRow, IndividualRow, Store
from tests.inspect.conftest import ROOT, evolve

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.tmux]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DEADLINE = 20.0


@pytest.fixture(scope="module")
def live_run(tower_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's run: the tests commit a generation to it as a driver would."""
    dest = tmp_path_factory.mktemp("ui") / "small"
    shutil.copytree(tower_run, dest)
    return dest


@pytest.fixture(scope="module")
def server(live_run: Path) -> Iterator[str]:
    """`evolve ui RUN --port 0` as a real process; yields its address."""
    proc = subprocess.Popen([sys.executable, "-m", "evolve.cli", "ui", str(live_run), "--port", "0"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first line names the address (the process ends otherwise)
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, line + proc.stderr.read()
        yield found.group(0).rstrip("/")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page and the console errors (and uncaught exceptions) it reports."""
    errors: list[str] = []
    pg = browser.new_page(viewport={"width": 1300, "height": 900})

    def console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    pg.on("console", console)
    pg.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    try:
        yield pg, errors
    finally:
        pg.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _api(url: str) -> Any:
    status, text = _get(url)
    assert status == 200, text
    return json.loads(text)


def _ready(pg: Page, url: str) -> None:
    pg.goto(url)
    pg.wait_for_selector("body[data-ready='1']", timeout=DEADLINE * 1000)


def test_every_view_loads_counts_overlaps_and_replays(server: str, live_run: Path,
                                                      page: tuple[Page, list[str]]) -> None:
    pg, errors = page
    _ready(pg, server + "/")
    assert pg.locator("table.runs a", has_text="small").count() == 1

    _ready(pg, server + "/run/small")
    pg.wait_for_selector("svg#scatter g.pt")
    run = _api(server + "/api/run/small")
    last = run["generations"][-1]["generation"]
    points = _api(server + f"/api/run/small/generation/{last}")["points"]
    objectives = run["objectives"]
    assert len(objectives) >= 2 and pg.locator("#gen-label").inner_text() == str(last)
    # every individual with values on both axes is counted in exactly one marker: none hidden
    for x, y in ((0, 1), (1, 2), (0, 2)):
        pg.select_option("#axis-x", str(x))
        pg.select_option("#axis-y", str(y))
        placed = [p for p in points if p[2][x] is not None and p[2][y] is not None]
        counts = [int(c) for c in pg.locator("svg#scatter g.pt").evaluate_all("gs => gs.map(g => g.dataset.count)")]
        assert sum(counts) == len(placed)
        assert len(counts) == len({(p[2][x], p[2][y]) for p in placed})
    # with every earlier evaluation: still each counted once (earlier ones as one layer of dots)
    marks = len(pg.evaluate("performance.getEntriesByName('scatter-drawn')"))
    pg.check("#earlier")
    pg.wait_for_function(f"performance.getEntriesByName('scatter-drawn').length > {marks}")
    every = _api(server + f"/api/run/small/generation/{last}?earlier=1")["points"]
    placed = [p for p in every if p[2][0] is not None and p[2][2] is not None]
    counts = [int(c) for c in pg.locator("svg#scatter g.pt, svg#scatter g.earlier-dots").evaluate_all(
        "gs => gs.map(g => g.dataset.count)")]
    assert sum(counts) == len(placed) == len({p[0] for p in every})
    assert pg.locator(".charts figure").count() == 1 + len(objectives)  # hypervolume + one per objective
    assert pg.locator("h2", has_text="Failures by reason").count() == 1

    ind = next(p[0] for p in points if p[3] == "front")
    _ready(pg, server + f"/run/small/individual/{ind}")
    detail = _api(server + f"/api/run/small/individual/{ind}")
    assert json.loads(pg.locator("pre.genome").inner_text()) == detail["genome"]
    assert pg.locator("table.metrics th", has_text="h2").count() == 1  # metrics per level
    assert pg.locator("table.tasks").count() >= 1
    pg.wait_for_selector(f"ul.tree li[data-id='{ind}']")
    for parent in detail["parents"]:
        assert pg.locator(f"ul.tree li[data-id='{parent}']").count() >= 1
    pg.wait_for_selector("#replay-play")
    assert pg.locator("#frame").get_attribute("data-frame") in ("0", "1")
    pg.click("#replay-play")
    pg.wait_for_function("Number(document.querySelector('#frame').dataset.frame) > 3", timeout=DEADLINE * 1000)
    pg.click("#replay-pause")
    pg.wait_for_selector("#frame[data-state='paused']")
    at = int(pg.locator("#frame").get_attribute("data-frame") or 0)
    pg.click("#replay-next")
    pg.wait_for_function(f"Number(document.querySelector('#frame').dataset.frame) === {at + 1}",
                         timeout=DEADLINE * 1000)
    assert errors == []


def _append_generation(run_dir: Path) -> int:
    """Commit one more generation through the store's own API, as the driver does: the last
    generation's individuals again under new ids, the first of them failed at the point of the
    second (a front member). Waits while the dashboard reads the store."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            store = Store.open(run_dir)
            break
        except EvolveError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with store:
        rid = store.run()["run_id"]
        last = store.last_generation(rid)
        assert last is not None
        g = last + 1
        rows = store.query("""SELECT i.individual_id, i.species, i.hash, i.genome, i.parents, i.seed, e.status,
                                     e.objectives, e.metrics, e.constraints, e.cv, e.feasible, e.wall_seconds, e.node
                              FROM individuals i JOIN evaluations e USING (run_id, individual_id)
                              WHERE i.run_id = ? AND i.generation = ? ORDER BY i.individual_id""", [rid, last])
        ids = [f"g{g:03d}-{k:03d}" for k in range(len(rows))]
        inds = [IndividualRow(new, r[1], g, r[2], r[3], [r[0]], r[5], "mutation") for new, r in zip(ids, rows)]
        evals = [EvaluationRow(new, g, r[6], list(r[7]), r[8], list(r[9]), r[10], r[11], None, r[12], r[13], None,
                               None, 1, 0, None, None) for new, r in zip(ids, rows)]
        failed = evals[0]
        failed.status, failed.feasible, failed.error = "failed", False, "harness crashed: RuntimeError: boom"
        failed.objectives = list(rows[1][7])
        fronts = [FrontRow(g, new, 1 if new == failed.individual_id else 0, None) for new in ids]
        row = GenerationRow(g, rows[0][1], None, len(rows), 1, 0, len(rows), len(rows) - 1, 0.1)
        store.commit_generations(rid, [GenerationRecord(row, inds, evals, fronts)])
    return g


def test_a_committed_generation_shows_up_without_a_reload(server: str, live_run: Path,
                                                          page: tuple[Page, list[str]]) -> None:
    pg, errors = page
    _ready(pg, server + "/run/small")
    before = int(pg.evaluate("document.body.dataset.generation"))
    pg.evaluate("window.__same_page = true")
    g = _append_generation(live_run)
    assert g == before + 1
    pg.wait_for_function(f"document.body.dataset.generation === '{g}'", timeout=DEADLINE * 1000)
    pg.wait_for_function(f"document.getElementById('gen-label').textContent === '{g}'", timeout=DEADLINE * 1000)
    assert pg.evaluate("window.__same_page") is True  # updated in place, not reloaded
    # the failed evaluation shares its point with a front member: both counted, its cross on top
    spot = pg.locator("svg#scatter g.pt[data-kinds~='failed']")
    assert spot.count() == 1
    assert "front" in (spot.get_attribute("data-kinds") or "").split()
    drawn = spot.evaluate("g => [...g.children].map(c => c.tagName + '.' + (c.getAttribute('class') || ''))")
    assert drawn.index("path.failed") > drawn.index("circle.front")
    assert int(spot.get_attribute("data-count") or 0) >= 2
    assert pg.locator("table.failures", has_text="harness crashed").count() == 1
    assert errors == []


def _one_line_page(url: str) -> str:
    status, text = _get(url)
    assert status == 404
    lines = re.findall(r"<main>(.*)</main>", text)
    assert len(lines) == 1
    return html.unescape(re.sub(r"<[^>]+>", "", lines[0]))


def test_bad_input_is_one_line(server: str, live_run: Path) -> None:
    assert _one_line_page(server + "/run/nope") == "no run 'nope' here"
    assert _one_line_page(server + "/run/small/individual/nobody") == "run small has no individual 'nobody'"
    status, text = _get(server + "/api/run/small/individual/nobody/cast")
    assert status == 404 and json.loads(text) == {"error": "run small has no individual 'nobody'"}
    port = server.rsplit(":", 1)[1]
    r = evolve("ui", str(live_run), "--port", port, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"evolve: error: port {port} on 127.0.0.1 is in use; "
                                             "pick another with --port (0 picks a free one)"]
    r = evolve("ui", "no-such-run", "--runs", str(live_run.parent), "--port", "0", timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no run 'no-such-run'" in r.stderr
