"""Snapshots of the work tree that the recorder commits: what is there, read safely.

Everything in the work tree was put there by commands typed into panes, so it is
untrusted: the walk never follows a symbolic link (directories are opened with
`O_NOFOLLOW` relative to their parent's descriptor, so a directory swapped for a link
mid-walk is refused, not followed), never opens a special file (a FIFO would block, a
device would read the host), and stops at caps on files, directories and bytes. What it
cannot record - a nested `.git`, a FIFO or socket, an undecodable name, too many or too
large files, too many directories - raises `Unrecordable`, which ends the evaluation as
failed with that reason.

A file is re-read when its signature (inode, size, mtime, ctime, mode) changed: ctime
cannot be set back by a harness, so a same-size rewrite with its old mtime restored is
seen. Writes within one clock tick of the last commit are re-read anyway (racy files).
"""
from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from harness_tower.errors import TowerError

Change = tuple[str, bytes | None, int]  # (path, content or None for a deletion, git mode)
_Sig = tuple[int, int, int, int, int]
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
RACY_NS = 50_000_000  # files changed this close to the last commit are re-read


class Unrecordable(TowerError):
    """The work tree holds something the recorder cannot (or must not) record."""


class ChangedSinceRecorded(TowerError):
    """A file differs from what the trajectory last recorded of it."""


@dataclass(frozen=True)
class TreeCaps:
    """How much a work tree may hold; beyond any of these the evaluation ends as failed."""

    max_files: int = 2000
    max_bytes: int = 32 << 20
    max_file_bytes: int = 8 << 20
    max_depth: int = 32
    max_dirs: int = 256  # a snapshot holds every directory open: bounds the recorder's descriptors


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


class WorkTree:
    """The work tree as last recorded, and the changes since."""

    def __init__(self, root: Path, caps: TreeCaps = TreeCaps()) -> None:
        self.root, self.caps = root, caps
        self.known: dict[str, _Sig] = {}
        self.digests: dict[str, bytes] = {}  # path -> digest of the content last recorded
        self.lock = threading.Lock()
        self._fds: list[int] = []

    # --- snapshots --------------------------------------------------------------------
    def changes(self, since_ns: int) -> list[Change]:
        """What changed since the last snapshot; `since_ns` is when that snapshot was taken."""
        with self.lock:
            seen: dict[str, _Sig] = {}
            digests: dict[str, bytes] = {}
            out: list[Change] = []
            total = 0
            try:
                for rel, dir_fd, name, st in self._walk():
                    sig = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
                    seen[rel] = sig
                    if len(seen) > self.caps.max_files:
                        raise Unrecordable(f"the work tree holds more than {self.caps.max_files} files")
                    total += st.st_size
                    if total > self.caps.max_bytes:
                        raise Unrecordable(f"the work tree holds more than {self.caps.max_bytes >> 20} MiB")
                    if self.known.get(rel) == sig and st.st_ctime_ns < since_ns - RACY_NS:
                        digests[rel] = self.digests[rel]
                        continue
                    if stat.S_ISLNK(st.st_mode):  # recorded as a link: the validators' `tamper` flags it
                        data, mode = os.fsencode(os.readlink(name, dir_fd=dir_fd)), 0o120000
                    else:
                        data = _read_regular(dir_fd, name, rel, st, self.caps.max_file_bytes)
                        mode = 0o100755 if st.st_mode & 0o111 else 0o100644
                    digests[rel] = hashlib.blake2b(data, digest_size=16).digest()
                    if digests[rel] != self.digests.get(rel) or rel not in self.known or self.known[rel][4] != sig[4]:
                        out.append((rel, data, mode))
            finally:
                self._close()
            out.extend((rel, None, 0) for rel in self.known if rel not in seen)
            self.known, self.digests = seen, digests
            return out

    def recorded(self, rel: str) -> bytes:
        """The content of `rel` as it is now, which must be what was last recorded.

        What a writer level runs must be what the trajectory shows it typed: a file not in
        the last snapshot, or changed since, is refused.
        """
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") for p in parts):
            raise TowerError(f"{rel!r} is not a path inside the work tree")
        with self.lock:
            want = self.digests.get(rel)
            if want is None or not stat.S_ISREG(self.known[rel][4]):
                raise TowerError(f"{rel} is not a recorded file of the work tree")
            fd = os.open(self.root, _DIR_FLAGS)
            try:
                for part in parts[:-1]:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = nxt
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
                data = _read_regular(fd, parts[-1], rel, st, self.caps.max_file_bytes)
            except OSError as exc:
                raise TowerError(f"{rel} cannot be read: {exc.strerror}") from None
            finally:
                os.close(fd)
            if hashlib.blake2b(data, digest_size=16).digest() != want:
                raise ChangedSinceRecorded(f"{rel} changed after it was recorded")
            return data

    def _walk(self) -> list[tuple[str, int, str, os.stat_result]]:
        """(path, parent directory fd, name, lstat) of every file and link, directories opened safely.

        The directory descriptors stay open until `_close` (the caller reads files through them).
        """
        found: list[tuple[str, int, str, os.stat_result]] = []
        root_fd = os.open(self.root, _DIR_FLAGS)
        self._fds = [root_fd]
        stack: list[tuple[str, int, int]] = [("", root_fd, 0)]
        while stack:
            prefix, dir_fd, depth = stack.pop()
            with os.scandir(dir_fd) as entries:
                names = [e.name for e in entries]
            for name in names:
                rel = prefix + name
                try:
                    rel.encode("utf-8")
                except UnicodeEncodeError:
                    raise Unrecordable(f"a file name that is not UTF-8: {os.fsencode(rel)!r}") from None
                if name == ".git":
                    raise Unrecordable(f"a nested git directory or file: {rel}")
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed between listing and looking
                if stat.S_ISDIR(st.st_mode):
                    if len(self._fds) > self.caps.max_dirs:
                        raise Unrecordable(f"the work tree holds more than {self.caps.max_dirs} directories")
                    if depth + 1 > self.caps.max_depth:
                        raise Unrecordable(f"directories nested deeper than {self.caps.max_depth}: {rel}")
                    try:
                        sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                    except OSError as exc:
                        raise Unrecordable(f"{rel}: a directory that cannot be read ({exc.strerror})") from None
                    self._fds.append(sub)
                    if os.fstat(sub).st_ino != st.st_ino:
                        raise Unrecordable(f"{rel}: replaced while it was being recorded")
                    stack.append((rel + "/", sub, depth + 1))
                elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    found.append((rel, dir_fd, name, st))
                else:
                    raise Unrecordable(f"{rel}: a {_kind(st.st_mode)} cannot be recorded")
        return found

    def _close(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def close(self) -> None:
        with self.lock:
            self._close()


def _read_regular(dir_fd: int, name: str, rel: str, st: os.stat_result, limit: int) -> bytes:
    """Read a regular file without following a link or opening anything else in its place."""
    if st.st_size > limit:
        raise Unrecordable(f"{rel}: {st.st_size} bytes, more than the {limit >> 20} MiB a file may hold")
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise Unrecordable(f"{rel}: cannot be opened ({exc.strerror})") from None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode):
            raise Unrecordable(f"{rel}: a {_kind(now.st_mode)} cannot be recorded")
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise Unrecordable(f"{rel}: more than the {limit >> 20} MiB a file may hold")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
