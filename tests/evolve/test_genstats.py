"""What a generation says about the search: objective statistics, distinct front points,
failures by reason."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import yaml

from evolve.genstats import distinct_points, encode, failure_reason, failures, objective_stats, progress_text
from evolve.store import Store
from tests.evolve.conftest import REPO, cli, cli_env


def test_failure_reasons_group_failures_of_one_kind() -> None:
    assert failure_reason("timeout", "the tower did not finish within 30s") == \
        failure_reason("timeout", "the tower did not finish within 31.5s") == \
        "timeout: the tower did not finish within Ns"
    assert failure_reason("invalid", "constraint violated: tamper=3 (commits holding what only the evaluator "
                                     "may write); constraint violated: self_read=1 (...)") == \
        "invalid: constraint violated: tamper=N"
    assert failure_reason("failed", "ValueError: bad 'h1.py'\nTraceback ...") == "failed: ValueError: bad …"
    assert failure_reason("failed", None) == "failed"
    crash = "Traceback (most recent call last):\n  File \"h1.py\", line 3, in <module>\nKeyError: 'task'\n"
    assert failure_reason("failed", crash) == failure_reason("failed", crash.replace("3", "7")) == \
        "failed: KeyError: …"
    assert failure_reason("failed", "terminal flooded: Traceback (most recent call last):\nOSError: x") == \
        "failed: terminal flooded: OSError: x"
    assert len(failure_reason("failed", "x" * 500)) <= len("failed: ") + 60
    assert failures([("ok", None), ("timeout", "after 3s"), ("timeout", "after 4s"), ("failed", "boom")]) == \
        {"timeout: after Ns": 2, "failed: boom": 1}


def test_objective_statistics_skip_what_is_missing_or_not_finite() -> None:
    stats = objective_stats(["f1", "f2"], [[0.5, None], [1.5, math.inf], [1.0]])
    assert stats == [{"metric": "f1", "n": 3, "min": 0.5, "mean": 1.0, "max": 1.5},
                     {"metric": "f2", "n": 0, "min": None, "mean": None, "max": None}]
    json.loads(encode(stats))  # strict JSON
    assert distinct_points(np.array([[0.1, 0.2], [0.1, 0.2], [0.3, 0.0]])) == 2
    assert distinct_points(np.empty((0, 2))) == 0
    line = progress_text(encode(stats), encode({"timeout: after Ns": 2}))
    assert line == "f1 0.5/1/1.5 (min/mean/max); failed: timeout: after Ns ×2"


def test_a_run_stores_and_prints_each_generations_statistics(tmp_path: Path) -> None:
    """`evolve run` into a pipe: one unwrapped line per generation with the figures the
    `generations` row holds, and those agree with the stored evaluations and fronts."""
    config = {"name": "stats", "seed": 5, "generations": 4,
              "species": {"name": "numeric", "params": {"problem": "zdt1", "n_var": 6}},
              "population": {"size": 12}, "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 10.0}],
              "evaluation": {"timeout": 30, "actors": 0}}
    (tmp_path / "stats.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(cli("run", str(tmp_path / "stats.yaml"), "--out", str(tmp_path / "runs"), "--run-id", "s"),
                          capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("generation ")]
    assert [line.split(" (")[0] for line in lines] == [f"generation {g}" for g in range(4)]
    with Store.open(tmp_path / "runs" / "s", read_only=True) as store:
        rows = store.query("SELECT generation, front_size, front_points, objective_stats, failures FROM generations "
                           "ORDER BY generation")
        for (g, size, points, stats_json, failed), line in zip(rows, lines):
            stats = json.loads(stats_json)
            assert f"front {size} ({points} distinct)" in line and line.endswith(" (min/mean/max)")
            assert json.loads(failed) == {}
            for k, s in enumerate(stats):
                low, mean, high, n = store.query(
                    f"SELECT min(objectives[{k + 1}]), avg(objectives[{k + 1}]), max(objectives[{k + 1}]), count(*) "
                    "FROM evaluations WHERE generation = ? AND status = 'ok'", [g])[0]
                assert (s["metric"], s["n"], s["min"], s["max"]) == (f"f{k + 1}", n, low, high)
                assert math.isclose(s["mean"], mean)
                assert f"{s['metric']} {s['min']:.4g}/{s['mean']:.4g}/{s['max']:.4g}" in line
            distinct = store.query("SELECT count(DISTINCT e.objectives) FROM fronts f JOIN evaluations e "
                                   "USING (run_id, individual_id) WHERE f.generation = ? AND f.rank = 0", [g])[0][0]
            assert points == distinct
    assert max(len(line) for line in lines) > 80  # and still one line each: nothing wrapped
