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
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar, cast

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
    def open(cls, path: str | Path, *, prefetch: bool = False) -> Trajectory:
        """Read the history of the repository at `path` (its current HEAD, first parents).

        With `prefetch`, every code blob the history mentions is read while the history is
        still being read (`score()` needs nearly all of them): one `git cat-file --batch`
        runs beside `git log`, fed each blob id as soon as the log names it.

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
            git_dir = str(repo.git_dir)
            pump = _BlobPump(git_dir) if prefetch else None
            try:
                commits = _read_log(git_dir, pump, str(path))
            finally:
                blobs = pump.finish() if pump is not None else {}
        except RepositoryError:
            repo.close()
            raise
        except OSError as exc:          # git itself could not be started
            repo.close()
            raise RepositoryError(f"git failed: {exc}", repo=str(path)) from None
        traj = cls(where, repo, commits)
        if pump is not None:
            traj._blobs.update(blobs)
            traj._memo["prefetched"] = True
        return traj

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


LOG_ARGS = ("log", "--reverse", "--first-parent", "--diff-merges=first-parent", "--root",
            "--raw", "-z", "--no-renames", "--no-abbrev", "--no-color", "--no-ext-diff",
            "--no-textconv", "--format=%H%x00%B", "HEAD")


def _git() -> str:
    return str(git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git")


class _BlobPump:
    """A `git cat-file --batch` fed blob ids while the log is still being read; a thread
    collects the answers (`<id> blob <size>` + data, or `<id> missing`)."""

    def __init__(self, git_dir: str) -> None:
        self.proc = subprocess.Popen([_git(), f"--git-dir={git_dir}", "cat-file", "--batch"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.seen: set[str] = set()
        self.blobs: dict[str, bytes] = {}
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def want(self, sha: str) -> None:
        if sha in self.seen or self.proc.stdin is None:
            return
        self.seen.add(sha)
        try:
            self.proc.stdin.write(sha.encode("ascii") + b"\n")
        except OSError:                 # cat-file died: the lazy path reads what is missing
            self.proc.stdin = None

    def _collect(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while header := out.readline():
            parts = header.split()
            if len(parts) != 3:
                continue                # "<id> missing"
            data = out.read(int(parts[2]))
            out.read(1)
            self.blobs[parts[0].decode("ascii")] = data

    def finish(self) -> dict[str, bytes]:
        """Close the input, wait for the answers; what was read (missing ids are absent)."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        self.thread.join(timeout=60)
        if self.thread.is_alive() or self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        return self.blobs


def _tokens(stream: IO[bytes]) -> Iterator[bytes]:
    """The NUL-separated tokens of a stream, as they arrive."""
    rest = b""
    while chunk := stream.read(1 << 16):
        parts = (rest + chunk).split(b"\0")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def _read_log(git_dir: str, pump: _BlobPump | None, label: str) -> tuple[Commit, ...]:
    """Run `git log` and parse its output as it streams in; RepositoryError if git fails."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([_git(), f"--git-dir={git_dir}", *LOG_ARGS],
                                stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        try:
            commits = _parse_log(_tokens(proc.stdout), pump.want if pump is not None else None)
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            err.seek(0)
            detail = err.read().decode("utf-8", "replace").strip().splitlines()
            raise RepositoryError(f"git failed: {detail[-1] if detail else f'exit {code}'}",
                                  repo=label)
    return commits


def _parse_log(tokens: Iterable[bytes] | bytes,
               on_code_blob: Callable[[str], None] | None = None) -> tuple[Commit, ...]:
    """Parse `git log -z --raw --format=%H%x00%B`: per commit a header token, a message
    token, then pairs of (`:modes ids status`, path) tokens. `on_code_blob` hears of each
    regular code blob as soon as it is parsed."""
    it = iter(tokens.split(b"\0") if isinstance(tokens, bytes) else tokens)
    entries: list[tuple[str, str, list[Change]]] = []
    token = next(it, None)
    while token is not None:
        header = token.strip()
        if not header:
            token = next(it, None)
            continue
        sha = header.decode("ascii")
        message = next(it, b"").decode("utf-8", "surrogateescape")
        changes: list[Change] = []
        token = next(it, None)
        while token is not None and token.lstrip(b"\n").startswith(b":"):
            path_token = next(it, None)
            if path_token is None:
                token = None
                break
            meta = token.lstrip(b"\n")[1:].split(b" ")
            path = path_token.decode("utf-8", "surrogateescape")
            old_mode, new_mode = meta[0].decode("ascii"), meta[1].decode("ascii")
            old_id = None if old_mode == ABSENT else meta[2].decode("ascii")
            new_id = None if new_mode == ABSENT else meta[3].decode("ascii")
            new = new_id if new_mode in REGULAR_MODES else None
            changes.append(Change(path, old_id if old_mode in REGULAR_MODES else None, new,
                                  old_mode, new_mode, old_id, new_id))
            if on_code_blob is not None and new is not None and is_code(path):
                on_code_blob(new)
            token = next(it, None)
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
