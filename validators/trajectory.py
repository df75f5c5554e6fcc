"""A trajectory repository's history, read once: commits, their trailers and their changes.

Every metric works from one `Trajectory`: a single `git log` stream gives each commit's
message and the entries it changed, with their file modes (no renames, no checkouts); blob
contents come from the object store - code blobs in one bulk `cat-file --batch` run when a
metric walks the history, anything else through GitPython's persistent `cat-file` - and are
cached by id.

Only regular files (modes 100644 and 100755) have *content*: a symbolic link's blob is its
target path and a submodule (gitlink) is a commit id, so neither is ever read as code.
`Change.old`/`Change.new` are therefore regular-file blob ids (None otherwise); the raw
entries stay available (`old_mode`/`new_mode`, `old_id`/`new_id`) for `tamper`, which flags
every non-regular entry.

What the evaluator put there is read from the root commit `init`, never from a later tree:
a harness could rewrite `.tower/manifest.json`, so only `init`'s manifest counts.

>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     [c.subject for c in traj.commits_of("h2_writer")][:2]
['h2_writer: cat > h1.py', 'h2_writer: Enter']
"""
from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import git

from validators.errors import NotATrajectoryError, RepositoryError, UnknownSessionError
from validators.text import decode
from validators.trailers import Trailers, label_of, parse_message

NON_CODE = (".captures/", ".tower/")
MANIFEST = ".tower/manifest.json"
ABSENT = "000000"
REGULAR_MODES = frozenset({"100644", "100755"})
SYMLINK, GITLINK = "120000", "160000"
_LEVEL_FILE = re.compile(r"h([1-9][0-9]*)\.py")
T = TypeVar("T")


def is_code(path: str) -> bool:
    """Whether a path counts as code for the metrics (anything outside `.captures/`, `.tower/`).

    >>> is_code("h1.py"), is_code(".captures/h1_writer/000001.txt")
    (True, False)
    """
    return not path.startswith(NON_CODE)


def is_python(path: str) -> bool:
    """Whether a path is Python code: `*.py` outside `.captures/` and `.tower/`.

    >>> is_python("pkg/m.py"), is_python(".tower/x.py"), is_python("notes.txt")
    (True, False, False)
    """
    return path.endswith(".py") and is_code(path)


def level_of(path: str) -> int | None:
    """n for a top-level level file `h{n}.py`, else None.

    >>> level_of("h12.py"), level_of("sub/h1.py"), level_of("h0.py")
    (12, None, None)
    """
    match = _LEVEL_FILE.fullmatch(path)
    return int(match.group(1)) if match else None


def capture_path(session: str, seq: int) -> str:
    """Where the recorder stores the pane capture of key `seq` of `session`.

    >>> capture_path("h1_writer", 7)
    '.captures/h1_writer/000007.txt'
    """
    return f".captures/{session}/{seq:06d}.txt"


@dataclass(frozen=True)
class Change:
    """One path changed by a commit.

    `old`/`new` are the blob ids of the *regular file* before and after (None = absent, or
    not a regular file: a symlink, a submodule...). The raw entries are kept as well: modes
    (`"000000"` = absent) and object ids whatever their kind.
    """

    path: str
    old: str | None
    new: str | None
    old_mode: str = ABSENT
    new_mode: str = ABSENT
    old_id: str | None = None
    new_id: str | None = None


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

    def __enter__(self) -> Self:
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
            _apply(tree, (c for c in commit.changes if is_code(c.path)))
            yield commit, tree

    @cached_property
    def final_tree(self) -> dict[str, str]:
        """Every regular file of the last commit (HEAD), `.captures/` and `.tower/` included."""
        tree: dict[str, str] = {}
        for commit in self.commits:
            _apply(tree, commit.changes)
        return tree

    @cached_property
    def init_tree(self) -> dict[str, str]:
        """Every regular file of the root commit when its subject is `init`; else empty.

        The root's changes are its whole tree (`--root`).
        """
        if not self.commits or self.commits[0].subject != "init":
            return {}
        tree: dict[str, str] = {}
        _apply(tree, self.commits[0].changes)
        return tree

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        """`.tower/manifest.json` of the root commit `init`; None when `init` is not the
        root, has no such regular file, or it is not a JSON object. Later versions of the
        file never count: only the evaluator writes `init`."""
        sha = self.init_tree.get(MANIFEST)
        if sha is None:
            return None
        try:
            value = json.loads(self.blob(sha))
        except (ValueError, UnicodeDecodeError):
            return None
        return value if isinstance(value, dict) else None

    @property
    def is_trajectory(self) -> bool:
        """Whether this repository is a trajectory at all: root `init` with a manifest."""
        return self.manifest is not None

    def require_trajectory(self) -> None:
        """Raise `NotATrajectoryError` unless the root commit is `init` with a manifest.

        Scoring any other repository would print zeros that look like a real result.
        """
        if not self.is_trajectory:
            root = self.commits[0].subject if self.commits else ""
            why = (f"its root commit is {root!r}, not 'init'" if root != "init"
                   else f"'init' has no {MANIFEST} holding a JSON object")
            raise NotATrajectoryError(f"not a trajectory: {why}", repo=str(self.path))

    @cached_property
    def level_files(self) -> dict[int, str]:
        """Top-level `h{n}.py` regular files of the final commit: level n -> blob id.

        A level file that is a symlink or a submodule is absent here (`tamper` flags it).
        """
        found: dict[int, str] = {}
        for path, sha in self.final_tree.items():
            n = level_of(path)
            if n is not None:
                found[n] = sha
        return found

    @cached_property
    def captures(self) -> dict[int, str | None]:
        """Key commit index -> blob id of its own pane capture (`.captures/{session}/{seq}.txt`
        in that commit's tree); None when the session, the Seq or the file is missing."""
        tree: dict[str, str] = {}
        out: dict[int, str | None] = {}
        for commit in self.commits:
            _apply(tree, (c for c in commit.changes if c.path.startswith(".captures/")))
            if commit.is_key:
                seq = commit.trailers.seq()
                own = (capture_path(commit.session, seq)
                       if commit.session is not None and seq is not None else None)
                out[commit.index] = tree.get(own) if own is not None else None
        return out

    def capture_text(self, commit: Commit) -> str:
        """The pane text captured after `commit`'s key; "" when it has none."""
        sha = self.captures.get(commit.index)
        return "" if sha is None else self.text(sha)

    @cached_property
    def depth(self) -> int:
        """Tower depth N: the manifest's `depth`, else the highest `h{n}.py` present, else 0."""
        depth = (self.manifest or {}).get("depth")
        if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1:
            return depth
        return max(self.level_files, default=0)


def _apply(tree: dict[str, str], changes: Iterable[Change]) -> None:
    """Update a path -> regular blob id map with a commit's changes."""
    for change in changes:
        if change.new is None:
            tree.pop(change.path, None)
        else:
            tree[change.path] = change.new


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
            old_mode, new_mode = meta[0].decode("ascii"), meta[1].decode("ascii")
            old_id = None if old_mode == ABSENT else meta[2].decode("ascii")
            new_id = None if new_mode == ABSENT else meta[3].decode("ascii")
            changes.append(Change(path,
                                  old_id if old_mode in REGULAR_MODES else None,
                                  new_id if new_mode in REGULAR_MODES else None,
                                  old_mode, new_mode, old_id, new_id))
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
