"""The engine's root exception."""
from __future__ import annotations


class EvolveError(Exception):
    """A problem the user can fix (bad config, unknown run, locked store, ...)."""
