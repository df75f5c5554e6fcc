"""`tamper` (constraint, must be 0): commits whose tree holds what only the trusted side may
write, or what cannot be code.

SPEC §3 splits the work tree: the evaluator writes `init` (`.tower/manifest.json` and the
top-level `h{N}.py`) and the closing `done` (`.tower/result.json`); the recorder writes one
pane capture per key; harnesses change everything else, by typing. A harness that rewrites
the manifest, forges or edits captures, replaces the top level, or plants a symbolic link
or a submodule (a path that is not content, or that points outside the work tree) has
tampered. A commit counts once, however many of these its tree holds:

- under `.tower/`: anything but `init`'s `manifest.json`, unchanged (same blob and mode), and
  `result.json` added or rewritten by the closing `done` commit; a deleted manifest counts;
- under `.captures/`: anything but each key commit adding its own capture
  (`.captures/{session}/{seq:06d}.txt`, its own session and `Seq`), and earlier captures
  unchanged; a capture edited or deleted later counts;
- anywhere: a symbolic link (120000), a submodule (gitlink, 160000) or any other entry that
  is not a regular file (100644/100755);
- the top-level `h{N}.py` (N = the manifest's depth): different from `init`'s (content or
  mode), or deleted.

The rule is about what a tree *holds*, so a forged file counts at every commit until it is
gone. `findings()` names the rule behind each counted commit.

>>> from validators.trajectory import Trajectory
>>> with Trajectory.open("tmux_outputs") as traj:            # doctest: +SKIP
...     compute(traj), findings(traj)[0].problems
(4, ('.tower/manifest.json: differs from init\\'s',))
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from validators.cli import metric_main
from validators.trajectory import (
    ABSENT,
    GITLINK,
    MANIFEST,
    REGULAR_MODES,
    SYMLINK,
    Change,
    Commit,
    Trajectory,
    capture_path,
)

RESULT = ".tower/result.json"


@dataclass(frozen=True)
class Finding:
    """One commit whose tree breaks the trust rules, with every reason (one per path)."""

    sha: str
    subject: str
    problems: tuple[str, ...]


def entry_kind(mode: str) -> str:
    """What a non-regular tree entry is, in words.

    >>> entry_kind("120000"), entry_kind("160000"), entry_kind("040000")
    ('a symbolic link', 'a submodule (gitlink)', 'a non-regular entry (mode 040000)')
    """
    if mode == SYMLINK:
        return "a symbolic link"
    if mode == GITLINK:
        return "a submodule (gitlink)"
    return f"a non-regular entry (mode {mode})"


class _Rules:
    """The trust rules over one history; `problem()` judges one path after one commit."""

    def __init__(self, traj: Trajectory) -> None:
        root = traj.commits[0] if traj.commits else None
        self.init_index = 0 if root is not None and root.subject == "init" else None
        # init's entries as (mode, id): a later `chmod` of a trusted file is a change too.
        self.init = {c.path: (c.new_mode, c.new_id) for c in root.changes
                     if c.new_id is not None} if self.init_index is not None and root else {}
        self.top = f"h{traj.depth}.py" if traj.depth else None
        last = traj.commits[-1] if traj.commits else None
        self.done_index = (last.index if last is not None and last.index > 0
                           and last.subject == "done" else None)

    def own_capture(self, commit: Commit) -> str | None:
        seq = commit.trailers.seq()
        if not commit.is_key or commit.session is None or seq is None:
            return None
        return capture_path(commit.session, seq)

    def problem(self, commit: Commit, change: Change, trusted: dict[str, bool]) -> str | None:
        """The violation `change` leaves at `path` after `commit` (None: fine). `trusted`
        records, per path, whether its present content was written by the trusted side."""
        path = change.path
        in_init = commit.index == self.init_index
        if change.new_mode == ABSENT:
            was = trusted.pop(path, False)
            if path == MANIFEST and MANIFEST in self.init:
                return f"{path}: deleted"
            if path == self.top and path in self.init:
                return f"{path}: the top level deleted"
            if was and path.startswith(".captures/"):
                return f"{path}: capture deleted"
            return None
        if change.new_mode not in REGULAR_MODES:
            trusted.pop(path, None)
            return f"{path}: {entry_kind(change.new_mode)}"
        if path == MANIFEST:
            if in_init or (change.new_mode, change.new_id) == self.init.get(MANIFEST):
                return None
            return (f"{path}: differs from init's" if MANIFEST in self.init
                    else f"{path}: not in init")
        if path == RESULT:
            if commit.index == self.done_index:
                return None
            return f"{path}: written before the closing done commit"
        if path.startswith(".tower/"):
            return f"{path}: only the evaluator writes .tower/"
        if path.startswith(".captures/"):
            if path == self.own_capture(commit) and not trusted.get(path):
                trusted[path] = True
                return None
            if trusted.pop(path, False):
                return f"{path}: capture rewritten after its key"
            return f"{path}: not this key commit's own capture"
        if path == self.top:
            if in_init or (change.new_mode, change.new_id) == self.init.get(path):
                return None
            return (f"{path}: the top level differs from init's" if path in self.init
                    else f"{path}: the top level was not in init")
        return None


def findings(traj: Trajectory) -> list[Finding]:
    """Every commit whose tree breaks a trust rule, oldest first, with its reasons."""
    rules = _Rules(traj)
    standing: dict[str, str] = {}      # path -> its violation, while the tree holds it
    trusted: dict[str, bool] = {}
    out: list[Finding] = []
    for commit in traj.commits:
        for change in commit.changes:
            found = rules.problem(commit, change, trusted)
            if found is None:
                standing.pop(change.path, None)
            else:
                standing[change.path] = found
        if standing:
            out.append(Finding(commit.sha, commit.subject, tuple(sorted(standing.values()))))
    return out


def compute(traj: Trajectory) -> int:
    """Number of commits whose tree holds something only the trusted side may write, or a
    non-regular entry."""
    return len(findings(traj))


if __name__ == "__main__":
    sys.exit(metric_main("tamper", compute, per_session=False))
