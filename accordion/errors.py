"""The root exception of the accordion package; the CLI prints it as one line."""
from __future__ import annotations


class AccordionError(Exception):
    """A user-facing failure: a missing or corrupt checkpoint, a bad argument, an unreadable corpus.

    `path` names the file involved, when there is one.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
