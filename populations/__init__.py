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
    "accordion": "populations.accordion:AccordionSpecies",
}


def make_species(name: str, params: Mapping[str, Any] | None = None) -> Species[Any]:
    """Build a species by name (or `package.module:Class` for an outside plug-in) with its
    parameters; SpeciesError names what is wrong."""
    target = SPECIES.get(name, name if ":" in name else None)
    if target is None:
        raise SpeciesError(f"unknown species {name!r} (known: {', '.join(sorted(SPECIES))}, "
                           "or module:Class of a plug-in)")
    module_name, cls_name = target.split(":", 1)
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise SpeciesError(f"cannot load species plug-in {target!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Species)):
        raise SpeciesError(f"{target!r} is not a Species subclass")
    try:
        return cls(**dict(params or {}))  # type: ignore[no-any-return]
    except TypeError as exc:  # an unknown or missing keyword
        raise SpeciesError(f"bad parameters: {exc}", species=name) from None


__all__ = ["SPECIES", "Candidate", "EvalItem", "Outcome", "Species", "SpeciesError", "make_species"]
