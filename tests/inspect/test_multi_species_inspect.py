"""Inspecting a run of two species: fronts per species with their own objective names, export."""
from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.inspect.conftest import ROOT, evolve

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.tmux]


@pytest.fixture(scope="module")
def both_run() -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="he-both-", dir="/tmp"))
    tmp.chmod(0o755)
    config = yaml.safe_load((ROOT / "configs" / "both_species.yaml").read_text())
    config["species"][0]["evaluation"]["validation"] = False  # what is inspected here is the fronts, not held-out
    (tmp / "both.yaml").write_text(yaml.safe_dump(config))
    r = evolve("run", str(tmp / "both.yaml"), "--runs", str(tmp), "--run-id", "both", "--quiet", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    try:
        yield tmp / "both"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_fronts_label_each_species_with_its_own_objectives(both_run: Path) -> None:
    rows = [json.loads(line) for line in evolve("fronts", str(both_run), "--format", "json").stdout.splitlines()]
    kinds = {r["species"] for r in rows}
    assert kinds == {"tower", "accordion"}
    for r in rows:
        expected = {"val_bpb", "sec_per_mtok", "param_bytes", "bypass_rate"} if r["species"] == "accordion" \
            else {"syntax_ratio@h2", "max_diff_len@h2"}
        assert set(r["objectives"]) == expected
    table = list(csv.DictReader(io.StringIO(evolve("fronts", str(both_run), "--format", "csv",
                                                   "--species", "accordion").stdout)))
    assert table and all(r["species"] == "accordion" and r["val_bpb"] for r in table)
    assert "syntax_ratio@h2" not in table[0]


def test_export_includes_the_species_table(both_run: Path, short_tmp: Path) -> None:
    r = evolve("export", str(both_run), "--parquet", str(short_tmp / "pq"))
    assert r.returncode == 0, r.stderr
    species = duckdb.execute(f"SELECT species FROM read_parquet('{short_tmp / 'pq' / 'run_species.parquet'}') "
                             "ORDER BY 1").fetchall()
    assert species == [("accordion",), ("tower",)]
