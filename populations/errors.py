"""The populations package's root exception."""
from __future__ import annotations


class SpeciesError(Exception):
    """A species that cannot be built or used as asked (unknown name, bad parameter, bad genome).

    >>> str(SpeciesError("unknown problem 'zdt9'", species="numeric"))
    "numeric: unknown problem 'zdt9'"
    """

    def __init__(self, message: str, *, species: str | None = None) -> None:
        self.message = message
        self.species = species
        super().__init__(f"{species}: {message}" if species else message)
