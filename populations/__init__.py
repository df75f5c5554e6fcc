"""Species plug-ins: each genome type with its sampling, variation and evaluation.

>>> make_species("numeric", {"problem": "zdt1"}).name
'numeric'
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from populations.base import Candidate, EvalItem, Outcome, Species
from populations.errors import SpeciesError

# name -> "module:Class"; imported on use so that `numeric` never needs the tower
SPECIES: dict[str, str] = {
    "numeric": "populations.numeric:NumericSpecies",
    "tower": "populations.tower:TowerSpecies",
}


def make_species(name: str, params: Mapping[str, Any] | None = None) -> Species[Any]:
    """Build a species by name with its parameters; SpeciesError names what is wrong."""
    if name not in SPECIES:
        raise SpeciesError(f"unknown species {name!r} (known: {', '.join(sorted(SPECIES))})")
    module_name, cls_name = SPECIES[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    try:
        return cls(**dict(params or {}))  # type: ignore[no-any-return]
    except TypeError as exc:  # an unknown or missing keyword
        raise SpeciesError(f"bad parameters: {exc}", species=name) from None


__all__ = ["Candidate", "EvalItem", "Outcome", "SPECIES", "Species", "SpeciesError", "make_species"]
