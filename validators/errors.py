"""The validators' root exception: one type with structured fields (repo, session)."""
from __future__ import annotations


class ValidatorError(Exception):
    """A trajectory that cannot be scored as asked: no repository, no commits, no such session.

    >>> str(ValidatorError("no commits", repo="/tmp/t"))
    '/tmp/t: no commits'
    >>> ValidatorError("unknown session 'h9_writer'", repo="/tmp/t", session="h9_writer").session
    'h9_writer'
    """

    def __init__(self, message: str, *, repo: str | None = None, session: str | None = None) -> None:
        self.message = message
        self.repo = repo
        self.session = session
        super().__init__(f"{repo}: {message}" if repo else message)


class RepositoryError(ValidatorError):
    """The path does not exist, is not a git repository, or has no commits."""


class UnknownSessionError(ValidatorError):
    """No key commit's subject names the requested session."""


class NotATrajectoryError(RepositoryError):
    """A git repository whose root commit is not `init` with a `.tower/manifest.json`."""
