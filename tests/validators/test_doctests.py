"""The examples in the validators' docstrings run and hold (they document the rules)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import validators

MODULES = sorted(m.name for m in pkgutil.iter_modules(validators.__path__, "validators."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_rules_have_examples() -> None:
    for name in ("task_correct", "untyped_chars", "fold", "self_read", "tamper"):
        tests = doctest.DocTestFinder().find(importlib.import_module(f"validators.{name}"))
        assert any(t.examples for t in tests), name
