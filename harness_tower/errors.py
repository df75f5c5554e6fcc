"""The tower's root exception: one type with structured fields (session, seq).

One type for the whole package, the harness side included: the op library (`ft`, standard
library only) raises it too, which is why this module imports nothing.
"""
from __future__ import annotations


class TowerError(Exception):
    """Something in the tower failed: a refused key, a pane that never settled, a bad genome.

    >>> str(TowerError("refused", session="h1_writer", seq=3))
    'h1_writer#3: refused'
    """

    def __init__(self, message: str, *, session: str | None = None, seq: int | None = None) -> None:
        self.message = message
        self.session = session
        self.seq = seq
        where = session or ""
        if seq is not None:
            where += f"#{seq}"
        super().__init__(f"{where}: {message}" if where else message)


class GenomeError(TowerError):
    """A tower genome that is malformed or cannot be rendered."""


class GraphError(TowerError):
    """An op composition whose types do not fit, found before anything runs (`ft`)."""
