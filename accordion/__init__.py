"""accordion: MicroAccordion (a self-growing byte transformer), KernelDB, LuminosityMutator, training.

Importing the package is cheap; torch loads only with the submodules that need it.
"""
from __future__ import annotations

from accordion.errors import AccordionError

__all__ = ["AccordionError"]
