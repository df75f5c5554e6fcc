"""A streaming byte corpus: documents from text, files and git trajectory repositories.

Documents arrive lazily and are appended, a chunk at a time, to a size-capped train buffer
and a held-out buffer. The split is either the tail of every document (`"tail"`, the default:
a single file still gets a held-out part) or whole groups by a stable hash (`"group"`: a
trajectory repository is one group, so nothing of a held-out trajectory is trained on). A
document may also carry its own decision (`Document.heldout`), which wins over the rule:
`trajectory_documents` decides per trajectory, so a corpus can hold out whole trajectories
while the built-in text is split by its tail. Batches are random windows, gathered with one
indexing op.

Reading documents needs no torch (the driver of an evolution run reads trajectories for
its trainer actors); only `ByteCorpus` does.
"""
from __future__ import annotations

import fnmatch
import hashlib
import subprocess
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from accordion.cold_start import COLD_START
from accordion.errors import AccordionError

if TYPE_CHECKING:
    import torch

GIT_PATTERNS = ("*.py", ".captures/**")


@dataclass(frozen=True)
class Document:
    name: str
    group: str  # the split unit: a file, a repository (trajectory), "builtin"
    data: bytes
    heldout: bool | None = None  # decided by whoever made the document; None: the corpus's rule


def builtin_documents() -> list[Document]:
    return [Document("builtin:cold_start", "builtin", COLD_START.encode())]


def text_documents(text: str, name: str = "text") -> list[Document]:
    return [Document(name, name, text.encode("utf-8", errors="replace"))]


def file_documents(path: str | Path) -> list[Document]:
    p = Path(path)
    try:
        return [Document(str(p), str(p), p.read_bytes())]
    except OSError as exc:
        raise AccordionError(f"corpus file unreadable: {p} ({exc.strerror or exc})", path=str(p)) from exc


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AccordionError(f"git failed on {repo}: {exc}", path=str(repo)) from exc
    if done.returncode:
        raise AccordionError(f"not a readable git repository: {repo} ({done.stderr.strip()[:200]})", path=str(repo))
    return done.stdout


def git_documents(repo: str | Path, patterns: Iterable[str] = GIT_PATTERNS) -> Iterator[Document]:
    """Every distinct blob whose path matches `patterns`, from all commits, oldest first.

    One `git rev-list --all --objects` names the objects, one `git cat-file --batch` streams them.
    """
    root = Path(repo)
    pats = tuple(patterns)
    listing = _git(root, "rev-list", "--all", "--objects", "--reverse")
    wanted: list[tuple[str, str]] = []
    for line in listing.splitlines():
        sha, _, path = line.partition(" ")
        if path and any(fnmatch.fnmatch(path, pat) for pat in pats):
            wanted.append((sha, path))
    if not wanted:
        return
    proc = subprocess.Popen(["git", "-C", str(root), "cat-file", "--batch"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if proc.stdin is None or proc.stdout is None:  # pragma: no cover - Popen with PIPE always sets them
        raise AccordionError(f"git cat-file could not start on {root}")
    stdin = proc.stdin

    def feed() -> None:  # a thread, so a large answer cannot block our writes
        try:
            stdin.write("".join(f"{sha}\n" for sha, _ in wanted).encode())
            stdin.close()
        except OSError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        for sha, path in wanted:
            header = proc.stdout.readline().split()
            if len(header) != 3:  # "<sha> missing" or a truncated stream
                continue
            size = int(header[2])
            body = proc.stdout.read(size)
            proc.stdout.read(1)  # the newline after each object
            if header[1] == b"blob":
                yield Document(f"{root.name}:{path}@{sha[:12]}", str(root), body)
    finally:
        writer.join(timeout=10)
        proc.stdout.close()
        proc.wait(timeout=10)


def documents_from(spec: str | Path) -> Iterator[Document]:
    """A file's bytes, or the matching blobs of a git repository."""
    p = Path(spec)
    if p.is_dir():
        if not (p / ".git").exists() and not (p / "HEAD").is_file():
            raise AccordionError(f"corpus directory is not a git repository: {p}", path=str(p))
        yield from git_documents(p)
    elif p.is_file():
        yield from file_documents(p)
    else:
        raise AccordionError(f"corpus not found: {p}", path=str(p))


def _group_hash(group: str) -> int:
    return int.from_bytes(hashlib.blake2b(group.encode(), digest_size=8).digest(), "big") % 1_000_000


def _held_out_group(group: str, fraction: float) -> bool:
    return _group_hash(group) < fraction * 1_000_000


def held_out_groups(groups: Iterable[str], fraction: float) -> set[str]:
    """The groups held out at `fraction`, by a stable hash of each name (a group never moves
    because others arrive); with none selected among two or more, the one of lowest hash, so
    a held-out split exists as soon as there is something to hold out."""
    names = sorted(set(groups))
    chosen = {g for g in names if _held_out_group(g, fraction)}
    if not chosen and len(names) >= 2 and fraction > 0:
        chosen = {min(names, key=lambda g: (_group_hash(g), g))}
    return chosen


def trajectory_documents(repos: Sequence[tuple[str, str | Path]], *, holdout: float,
                         patterns: Iterable[str] = GIT_PATTERNS,
                         cache: dict[str, list[Document]] | None = None) -> list[Document]:
    """The typed sources and pane captures of trajectory repositories, each repository one
    group named by its `name` (e.g. the individual id), whole trajectories held out by
    `held_out_groups` (decided here, so the corpus's own split rule does not apply to them).
    `cache` (repository path -> its documents) spares re-reading a finished trajectory.

    >>> trajectory_documents([], holdout=0.2)
    []
    """
    out_groups = held_out_groups((name for name, _ in repos), holdout)
    pats = tuple(patterns)
    docs = []
    for name, path in repos:
        key = f"{Path(path).resolve()}|{','.join(pats)}"
        read = cache.get(key) if cache is not None else None
        if read is None:
            read = list(git_documents(path, pats))
            if cache is not None:
                cache[key] = read
        for d in read:
            docs.append(Document(f"{name}:{d.name.split(':', 1)[-1]}", name, d.data, name in out_groups))
    return docs


class ByteCorpus:
    """Train and held-out byte buffers fed from a document stream."""

    def __init__(self, documents: Iterable[Document], *, holdout: float = 0.1, split: str = "tail",
                 max_bytes: int = 64 << 20, chunk_bytes: int = 4 << 20, refill_every: int = 100) -> None:
        if not 0.0 <= holdout < 1.0:
            raise AccordionError(f"corpus: holdout must be in [0, 1), got {holdout}")
        if split not in ("tail", "group"):
            raise AccordionError(f"corpus: split must be 'tail' or 'group', got {split!r}")
        self.holdout, self.split = holdout, split
        self.max_bytes, self.chunk_bytes, self.refill_every = max_bytes, chunk_bytes, refill_every
        self._source: Iterator[Document] | None = iter(documents)
        self._buf = {"train": bytearray(), "heldout": bytearray()}
        self._view: dict[str, torch.Tensor] = {}
        self.documents = 0
        self.bytes_read = 0
        self._calls = 0
        self.refill()

    @property
    def exhausted(self) -> bool:
        return self._source is None

    def refill(self) -> int:
        """Read up to `chunk_bytes` more from the stream; returns the bytes read."""
        import torch

        got = 0
        while self._source is not None and got < self.chunk_bytes:
            doc = next(self._source, None)
            if doc is None:
                self._source = None
                break
            self._add(doc)
            got += len(doc.data)
        for name, buf in self._buf.items():
            if len(buf) > self.max_bytes:  # keep the newest bytes
                del buf[: len(buf) - self.max_bytes]
            if buf:
                self._view[name] = torch.frombuffer(bytearray(buf), dtype=torch.uint8)
            else:
                self._view[name] = torch.empty(0, dtype=torch.uint8)
        return got

    def _add(self, doc: Document) -> None:
        data = doc.data if doc.data.endswith(b"\n") else doc.data + b"\n"
        self.documents += 1
        self.bytes_read += len(data)
        if doc.heldout is not None:
            self._buf["heldout" if doc.heldout else "train"] += data
        elif self.holdout == 0.0:
            self._buf["train"] += data
        elif self.split == "group":
            self._buf["heldout" if _held_out_group(doc.group, self.holdout) else "train"] += data
        else:
            cut = len(data) - int(len(data) * self.holdout)
            self._buf["train"] += data[:cut]
            self._buf["heldout"] += data[cut:]

    def size(self, split: str = "train") -> int:
        return int(self._view[split].numel())

    def batch(self, split: str, batch_size: int, block_size: int, generator: torch.Generator,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows: inputs (B, T) and next-byte targets (B, T), both int64."""
        import torch

        if split == "train":
            self._calls += 1
            if self._source is not None and self._calls % self.refill_every == 0:
                self.refill()
        data = self._view.get(split)
        if data is None:
            raise AccordionError(f"corpus: unknown split {split!r}")
        n = data.numel()
        if n < block_size + 1:
            raise AccordionError(f"corpus: the {split} split has {n} bytes, fewer than a window of "
                                 f"{block_size + 1}; give more text or a shorter --context")
        starts = torch.randint(0, n - block_size, (batch_size,), generator=generator)  # (B,)
        win = data[starts[:, None] + torch.arange(block_size + 1)].long()  # (B, T+1)
        return win[:, :-1].to(device), win[:, 1:].to(device)

    def describe(self) -> dict[str, int | bool]:
        return {"documents": self.documents, "bytes_read": self.bytes_read, "train_bytes": self.size("train"),
                "heldout_bytes": self.size("heldout"), "exhausted": self.exhausted}
