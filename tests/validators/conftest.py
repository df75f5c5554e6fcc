"""Hand-built trajectory repositories: real git objects written with `git fast-import`."""
from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


class Entry:
    """A tree entry other than a plain 100644 file: `Link("target")`, `Gitlink()`, `Exec(...)`."""

    mode = "100644"

    def __init__(self, data: bytes | str = b"") -> None:
        self.data = data.encode("utf-8") if isinstance(data, str) else data


class Link(Entry):
    """A symbolic link; `data` is its target."""

    mode = "120000"


class Exec(Entry):
    """An executable regular file."""

    mode = "100755"


class Gitlink(Entry):
    """A submodule entry: a commit id of another repository (nothing is stored here)."""

    mode = "160000"

    def __init__(self, commit: str = "1" * 40) -> None:
        super().__init__(commit)


Files = dict[str, "bytes | str | Entry | None"]  # path -> contents; None deletes the path


class TrajectoryBuilder:
    """Writes a linear history the way the recorder does, one `fast-import` run at the end.

    >>> b = TrajectoryBuilder(path)                                  # doctest: +SKIP
    >>> b.init(depth=2, files={"h2.py": "..."})
    >>> b.key("h2_writer", "cat > h1.py", time=1.0)
    >>> b.build()
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commits: list[tuple[str, Files]] = []
        self.seq: dict[str, int] = {}
        self.clock = 1795309284.0

    def commit(self, message: str, files: Files | None = None) -> None:
        """A commit with any message (for malformed trailers, `done`, ...)."""
        self.commits.append((message, dict(files or {})))

    def init(self, depth: int = 2, files: Files | None = None, *, expected: str = "hello world",
             command: str = "echo hello world", prompt: str = "$ ",
             manifest: dict[str, object] | None = None) -> None:
        """The root commit: `.tower/manifest.json` plus the given files."""
        data = manifest if manifest is not None else {
            "run_id": "r", "individual_id": "i", "genome_hash": "g", "depth": depth,
            "task": {"command": command, "expected": expected}, "prompt": prompt,
            "platform_version": "0.1.0"}
        self.commit("init", {".tower/manifest.json": json.dumps(data), **(files or {})})

    def key(self, session: str, keys: str, kind: str = "text", *, files: Files | None = None,
            time: float | str | None = None, seq: int | None = None,
            capture: str | None = None, ensure_ascii: bool = True,
            record: bool = True) -> None:
        """One key commit with well-formed trailers (override `seq`/`time` to break them).

        Its own capture holds `capture` (default `$ {keys}`); `record=False` writes none.
        """
        n = self.seq[session] = self.seq.get(session, 0) + 1
        seq = n if seq is None else seq
        if time is None:
            self.clock += 0.25
            time = self.clock
        stamp = time if isinstance(time, str) else f"{time:.6f}"
        message = (f"{session}: {keys[:20]}\n\nKeys: {json.dumps(keys, ensure_ascii=ensure_ascii)}"
                   f"\nKind: {kind}\nSeq: {seq}\nTime: {stamp}\n")
        all_files = dict(files or {})
        if record:
            all_files[f".captures/{session}/{seq:06d}.txt"] = (
                capture if capture is not None else f"$ {keys}\n")
        self.commit(message, all_files)

    def done(self) -> None:
        self.commit("done", {".tower/result.json": '{"ok": true}'})

    def build(self) -> Path:
        """Write every commit with `git fast-import`; returns the repository path."""
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.path)], check=True)
        stream = bytearray()
        for mark, (message, files) in enumerate(self.commits, start=1):
            msg = message.encode("utf-8")
            stream += (f"commit refs/heads/main\nmark :{mark}\n"
                       f"committer t <t@localhost> {1795309284 + mark} +0000\n").encode()
            stream += b"data %d\n%s\n" % (len(msg), msg)
            if mark > 1:
                stream += f"from :{mark - 1}\n".encode()
            for path, content in files.items():
                if content is None:
                    stream += f"D {path}\n".encode()
                elif isinstance(content, Gitlink):
                    stream += f"M 160000 {content.data.decode()} {path}\n".encode()
                elif isinstance(content, Entry):
                    stream += f"M {content.mode} inline {path}\n".encode()
                    stream += b"data %d\n%s\n" % (len(content.data), content.data)
                else:
                    blob = content.encode("utf-8") if isinstance(content, str) else content
                    stream += f"M 100644 inline {path}\n".encode()
                    stream += b"data %d\n%s\n" % (len(blob), blob)
            stream += b"\n"
        subprocess.run(["git", "fast-import", "--quiet"], input=bytes(stream), cwd=self.path,
                       check=True)
        return self.path


@pytest.fixture
def make_traj(tmp_path: Path) -> Callable[[str], TrajectoryBuilder]:
    """A factory of builders, each writing a fresh repository under `tmp_path`."""
    count = iter(range(1_000_000))

    def make(name: str = "traj") -> TrajectoryBuilder:
        return TrajectoryBuilder(tmp_path / f"{name}{next(count)}")
    return make
