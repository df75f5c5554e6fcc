"""A trajectory repository's history, read once: commits, their trailers and their changes.

Every metric works from one `Trajectory`: a single `git log` stream gives each commit's
message and the blobs it changed (no renames, no checkouts); blob contents come from the
object store - code blobs in one bulk `cat-file --batch` run when a metric walks the
history, anything else through GitPython's persistent `cat-file` - and are cached by id.

>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     [c.subject for c in traj.commits_of("h2_writer")][:2]
['h2_writer: cat > h1.py', 'h2_writer: Enter']
"""
from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import git

from validators.errors import RepositoryError, UnknownSessionError
from validators.text import decode
from validators.trailers import Trailers, label_of, parse_message

NON_CODE = (".captures/", ".tower/")
MANIFEST = ".tower/manifest.json"
_LEVEL_FILE = re.compile(r"h([1-9][0-9]*)\.py")
_GITLINK = b"160000"
T = TypeVar("T")


def is_code(path: str) -> bool:
    """Whether a path counts as code for the metrics (anything outside `.captures/`, `.tower/`).

    >>> is_code("h1.py"), is_code(".captures/h1_writer/000001.txt")
    (True, False)
    """
    return not path.startswith(NON_CODE)


@dataclass(frozen=True)
class Change:
    """One path changed by a commit: blob ids before and after (None = absent)."""

    path: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class Commit:
    """One commit of the linear history, oldest first (`index` 0 is the root)."""

    index: int
    sha: str
    subject: str
    session: str | None
    trailers: Trailers
    changes: tuple[Change, ...]
    is_key: bool


class Trajectory:
    """The parsed history of one trajectory repository; open with `Trajectory.open(path)`."""

    def __init__(self, path: Path, repo: git.Repo, commits: tuple[Commit, ...]) -> None:
        self.path = path
        self.repo = repo
        self.commits = commits
        self.key_commits = tuple(c for c in commits if c.is_key)
        by_session: dict[str, list[Commit]] = {}
        for commit in self.key_commits:
            if commit.session is not None:
                by_session.setdefault(commit.session, []).append(commit)
        self._by_session = {s: tuple(cs) for s, cs in by_session.items()}
        self._blobs: dict[str, bytes] = {}
        self._texts: dict[str, str] = {}
        self._memo: dict[str, Any] = {}

    @classmethod
    def open(cls, path: str | Path) -> Trajectory:
        """Read the history of the repository at `path` (its current HEAD, first parents).

        Raises `RepositoryError` when the path is missing, not a repository, or has no commits.
        """
        where = Path(path)
        if not where.exists():
            raise RepositoryError("no such file or directory", repo=str(path))
        try:
            repo = git.Repo(where)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise RepositoryError("not a git repository", repo=str(path)) from None
        try:
            if not repo.head.is_valid():
                raise RepositoryError("repository has no commits", repo=str(path))
            raw = repo.git.log(
                "--reverse", "--first-parent", "--diff-merges=first-parent", "--root", "--raw",
                "-z", "--no-renames", "--no-abbrev", "--no-color", "--no-ext-diff",
                "--no-textconv", "--format=%H%x00%B", "HEAD",
                stdout_as_string=False, strip_newline_in_stdout=False,
            )
        except git.GitCommandError as exc:
            repo.close()
            detail = (exc.stderr or "").strip().splitlines()
            reason = detail[-1].removeprefix("stderr: ").strip(" '") if detail else str(exc)
            raise RepositoryError(f"git failed: {reason}", repo=str(path)) from None
        except RepositoryError:
            repo.close()
            raise
        return cls(where, repo, _parse_log(raw))

    # -- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the git helper processes (the object store's `cat-file`)."""
        self.repo.close()

    def __enter__(self) -> Trajectory:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- sessions -----------------------------------------------------------------------
    @property
    def sessions(self) -> tuple[str, ...]:
        """Session names in the order of their first key commit."""
        return tuple(self._by_session)

    def resolve(self, session: str) -> str:
        """The session named `session`, or the one whose rank label it is (`h2` -> `h2_writer`).

        Raises `UnknownSessionError` when neither exists.
        """
        if session in self._by_session:
            return session
        for name in self._by_session:
            if label_of(name) == session:
                return name
        known = ", ".join(self._by_session) or "none"
        raise UnknownSessionError(f"unknown session {session!r} (sessions: {known})",
                                  repo=str(self.path), session=session)

    def commits_of(self, session: str) -> tuple[Commit, ...]:
        """Key commits whose subject starts with `{session}:`, oldest first.

        Raises `UnknownSessionError` when there are none.
        """
        return self._by_session[self.resolve(session)]

    # -- contents -----------------------------------------------------------------------
    def blob(self, sha: str) -> bytes:
        """The contents of a blob, read from the object store once."""
        data = self._blobs.get(sha)
        if data is None:
            data = self._blobs[sha] = self.repo.odb.stream(bytes.fromhex(sha)).read()
        return data

    def prefetch_code(self) -> None:
        """Read every code blob the history mentions with one `git cat-file --batch` run.

        The metrics that walk the history need nearly all of them; one bulk read saves a
        round trip to the persistent `cat-file` per blob.
        """
        if self._memo.get("prefetched"):
            return
        self._memo["prefetched"] = True
        wanted = list(dict.fromkeys(
            change.new for commit in self.commits for change in commit.changes
            if change.new is not None and change.new not in self._blobs and is_code(change.path)))
        if len(wanted) < 16:
            return  # not worth a process
        with tempfile.TemporaryFile() as ids:
            ids.write(("\n".join(wanted) + "\n").encode("ascii"))
            ids.seek(0)
            out = self.repo.git.cat_file("--batch", istream=ids, stdout_as_string=False,
                                         strip_newline_in_stdout=False)
        pos = 0
        for sha in wanted:
            end = out.index(b"\n", pos)
            header = out[pos:end].split(b" ")
            if len(header) != 3:       # "<id> missing": leave it to the lazy path
                pos = end + 1
                continue
            size = int(header[2])
            self._blobs[sha] = out[end + 1:end + 1 + size]
            pos = end + 1 + size + 1

    def text(self, sha: str) -> str:
        """A blob's contents decoded as UTF-8 (one character per undecodable byte)."""
        text = self._texts.get(sha)
        if text is None:
            text = self._texts[sha] = decode(self.blob(sha))
        return text

    def memo(self, key: str, factory: Callable[[], T]) -> T:
        """Per-trajectory state shared between metric calls (e.g. parse verdicts per blob)."""
        if key not in self._memo:
            self._memo[key] = factory()
        return cast(T, self._memo[key])

    def walk(self) -> Iterator[tuple[Commit, dict[str, str]]]:
        """Each commit with the code files of its tree (path -> blob id), oldest first.

        The same dict is updated in place from one commit to the next: copy what you keep.
        """
        tree: dict[str, str] = {}
        for commit in self.commits:
            for change in commit.changes:
                if not is_code(change.path):
                    continue
                if change.new is None:
                    tree.pop(change.path, None)
                else:
                    tree[change.path] = change.new
            yield commit, tree

    @cached_property
    def final_tree(self) -> dict[str, str]:
        """Every file of the last commit (HEAD), `.captures/` and `.tower/` included."""
        tree: dict[str, str] = {}
        for commit in self.commits:
            for change in commit.changes:
                if change.new is None:
                    tree.pop(change.path, None)
                else:
                    tree[change.path] = change.new
        return tree

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        """`.tower/manifest.json` of the final commit; None when missing or not a JSON object."""
        sha = self.final_tree.get(MANIFEST)
        if sha is None:
            return None
        try:
            value = json.loads(self.blob(sha))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @cached_property
    def level_files(self) -> dict[int, str]:
        """Top-level `h{n}.py` files of the final commit: level n -> blob id."""
        found: dict[int, str] = {}
        for path, sha in self.final_tree.items():
            match = _LEVEL_FILE.fullmatch(path)
            if match:
                found[int(match.group(1))] = sha
        return found

    @cached_property
    def depth(self) -> int:
        """Tower depth N: the manifest's `depth`, else the highest `h{n}.py` present, else 0."""
        depth = (self.manifest or {}).get("depth")
        if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1:
            return depth
        return max(self.level_files, default=0)


def _parse_log(raw: bytes) -> tuple[Commit, ...]:
    """Parse `git log -z --raw --format=%H%x00%B`: per commit a header token, a message
    token, then pairs of (`:modes ids status`, path) tokens."""
    tokens = raw.split(b"\0")
    entries: list[tuple[str, str, list[Change]]] = []
    i, n = 0, len(tokens)
    while i < n:
        header = tokens[i].strip()
        if not header:
            i += 1
            continue
        sha = header.decode("ascii")
        message = tokens[i + 1].decode("utf-8", "surrogateescape") if i + 1 < n else ""
        i += 2
        changes: list[Change] = []
        while i + 1 < n and tokens[i].lstrip(b"\n").startswith(b":"):
            meta = tokens[i].lstrip(b"\n")[1:].split(b" ")
            path = tokens[i + 1].decode("utf-8", "surrogateescape")
            i += 2
            old_mode, new_mode, old_id, new_id = meta[0], meta[1], meta[2], meta[3]
            old = None if old_mode in (b"000000", _GITLINK) else old_id.decode("ascii")
            new = None if new_mode in (b"000000", _GITLINK) else new_id.decode("ascii")
            if old is not None or new is not None:
                changes.append(Change(path, old, new))
        entries.append((sha, message, changes))
    commits: list[Commit] = []
    last = len(entries) - 1
    for index, (sha, message, changes) in enumerate(entries):
        parsed = parse_message(message)
        bookend = (index == 0 and parsed.subject == "init") or (
            index == last and index > 0 and parsed.subject == "done")
        commits.append(Commit(index, sha, parsed.subject, parsed.session, parsed.trailers,
                              tuple(changes), is_key=not bookend))
    return tuple(commits)
