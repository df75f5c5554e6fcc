"""From metrics to pymoo's F (minimised) and G (<= 0 feasible)."""
from __future__ import annotations

import math

import numpy as np

from populations.objectives import FAILED_G, Constraint, Objective, score

OBJ = (Objective("syntax_ratio@h2", "max", 0.0), Objective("max_diff_len@h2", "min", 100.0))
CON = (Constraint("keys_audit", eq=0), Constraint("task_correct", ge=1))


def test_max_objectives_are_negated_and_feasible_ok_has_zero_violation() -> None:
    s = score("ok", {"syntax_ratio@h2": 0.75, "max_diff_len@h2": 40, "keys_audit": 0, "task_correct": 1}, OBJ, CON)
    assert list(s.F) == [-0.75, 40.0]
    assert list(s.G) == [0.0, 0.0, 0.0]
    assert s.CV == 0 and s.note is None and s.values == [0.75, 40.0]


def test_failed_evaluations_are_infeasible_whatever_their_metrics() -> None:
    for status in ("failed", "timeout", "invalid"):
        s = score(status, {"syntax_ratio@h2": 1.0, "max_diff_len@h2": 1, "keys_audit": 0, "task_correct": 1}, OBJ, CON)
        assert s.G[0] == FAILED_G and s.CV >= FAILED_G
        assert s.note is not None and status in s.note


def test_missing_or_infinite_objectives_make_an_ok_evaluation_infeasible() -> None:
    s = score("ok", {"syntax_ratio@h2": None, "max_diff_len@h2": math.inf, "keys_audit": 0, "task_correct": 1},
              OBJ, CON)
    assert s.CV >= FAILED_G
    assert np.all(np.isinf(s.F))
    assert "syntax_ratio@h2 is missing" in (s.note or "") and "max_diff_len@h2 is inf" in (s.note or "")


def test_constraint_violations_add_up_per_bound() -> None:
    s = score("ok", {"syntax_ratio@h2": 1.0, "max_diff_len@h2": 3, "keys_audit": 2, "task_correct": 0}, OBJ, CON)
    assert list(s.G) == [0.0, 2.0, 1.0] and s.CV == 3.0
    assert "keys_audit violated by 2" in (s.note or "")
    assert Constraint("x", le=1.0, ge=0.0).violation(1.5) == 0.5
    assert Constraint("x", le=1.0, ge=0.0).violation(-2.0) == 2.0
    assert Constraint("x", eq=0.0).violation(-1.0) == 1.0
