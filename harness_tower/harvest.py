"""Harvest: trajectory repositories -> (observation, decision, keys) experience entries.

Every recorded send is an action taken after looking at the screen: the observation is the
line the eye was on (the last non-empty line of the capture before the send, the captured
prompt rewritten to the tower's `$ `), the decision names the action (`text:type KEYS`,
`ctrl:press KEY`) and the keys are the exact keys. Runs of text sends are one action. The
entries fill a tower genome's `decision` (observation -> decision) and `command` (decision
-> keys) tables; duplicates merge into one entry whose weight counts them, and each table
keeps its `max_entries` heaviest entries. Commands that were run, with the first line they
printed, are kept as `tasks`; given the instruction a person would have given for each
(`task_suite`), they become a task suite (split `train`: harvested sessions feed the search,
never its validation or test), whose check is the captured output.

>>> data = {"experience": {"decision": [["$", "k", "text:type ls"]], "command": [["text type ls", "k", "ls"]]},
...         "tasks": [{"command": "ls", "expected": "a.txt"}]}
>>> [e.value for e in seed_genome(data, ["List what is here."]).experience["command"]]
['ls', 'ls']
>>> task_suite(data, ["List what is here."], "mine")["tasks"][0]["check"]
{'output': ['a.txt']}
"""
from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness_tower.errors import TowerError
from harness_tower.genome import ExperienceEntry, TowerGenome, default_experience

FORMAT = "harness-evolve/experience"
TOWER_PROMPT = "$ "
_TRAILER = re.compile(r"^(Keys|Kind|Seq): (.*)$", re.MULTILINE)


class HarvestError(TowerError):
    """A path that is not a readable trajectory repository, or an unusable experience file."""


@dataclass(frozen=True)
class Send:
    session: str
    seq: int
    kind: str
    keys: str
    capture: str  # the screen right after the send


def repo_path(path: str | Path) -> Path:
    """A trajectory repository: `path` itself or `path/tmux_outputs` (an evaluation's output)."""
    p = Path(path)
    for candidate in (p, p / "tmux_outputs"):
        if (candidate / ".git").exists():
            return candidate
    raise HarvestError(f"not a trajectory repository: {p} (no git repository there or in tmux_outputs/)")


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        raise HarvestError(f"{repo}: git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
    return proc.stdout


def _blobs(repo: Path, specs: list[str]) -> list[str | None]:
    """Contents of `rev:path` specs in one `git cat-file --batch` (None where missing)."""
    if not specs:
        return []
    out = _git(repo, "cat-file", "--batch", data="".join(s + "\n" for s in specs).encode())
    result: list[str | None] = []
    pos = 0
    for _ in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] == b"missing":
            result.append(None)
            continue
        size = int(header[2])
        result.append(out[pos:pos + size].decode("utf-8", errors="replace"))
        pos += size + 1
    return result


def read_sends(repo: Path) -> tuple[dict[str, Any], dict[str, str], list[Send]]:
    """(manifest, first capture of each session, the sends in order) of one repository."""
    try:
        log = _git(repo, "log", "--reverse", "--format=%H%x00%B%x1e", "HEAD").decode("utf-8", errors="replace")
    except HarvestError:
        raise HarvestError(f"{repo}: a git repository without commits, not a trajectory") from None
    records = []
    for chunk in log.split("\x1e"):
        if "\x00" not in chunk:
            continue
        sha, body = chunk.strip("\n").split("\x00", 1)
        trailers = dict(_TRAILER.findall(body))
        session = body.split(":", 1)[0]
        if {"Keys", "Kind", "Seq"} <= trailers.keys():
            try:
                keys = json.loads(trailers["Keys"])
                records.append((sha, session, int(trailers["Seq"]), trailers["Kind"].strip(), keys))
            except (ValueError, TypeError):
                continue
    first = log.split("\x00", 1)[0].strip() if log else "HEAD"
    specs = [f"{sha}:.captures/{session}/{seq:06d}.txt" for sha, session, seq, _, _ in records]
    manifest_text, *captures = _blobs(repo, [f"{first}:.tower/manifest.json", *specs])
    try:
        manifest = json.loads(manifest_text or "{}")
    except ValueError:
        manifest = {}
    sessions = sorted({r[1] for r in records})
    initial = dict(zip(sessions, _blobs(repo, [f"{first}:.captures/{s}/{0:06d}.txt" for s in sessions])))
    sends = [Send(session, seq, kind, keys, cap or "") for (_, session, seq, kind, keys), cap
             in zip(records, captures) if isinstance(keys, str)]
    return manifest, {s: c or "" for s, c in initial.items()}, sends


def observation(screen: str, prompt: str) -> str:
    """The line the eye is on: the last non-empty line, its prompt written as the tower's."""
    rows = [row.rstrip() for row in screen.split("\n") if row.strip()]
    line = rows[-1] if rows else ""
    if prompt.strip() and line.startswith(prompt.rstrip()):
        rest = line[len(prompt):] if line.startswith(prompt) else ""
        line = (TOWER_PROMPT + rest).rstrip()
    return line


def actions(sends: Iterable[Send], initial: Mapping[str, str],
            prompt: str) -> Iterable[tuple[str, str, str, str, str]]:
    """(session, observation, kind, keys, screen after) per action; text runs are one action."""
    last_screen = dict(initial)
    pending: tuple[str, str, str, str] | None = None  # session, observation, keys, screen
    for send in sends:
        before = last_screen.get(send.session, "")
        last_screen[send.session] = send.capture
        if pending and (send.kind != "text" or pending[0] != send.session):
            yield pending[0], pending[1], "text", pending[2], pending[3]
            pending = None
        if send.kind == "text":
            if pending:
                pending = (pending[0], pending[1], pending[2] + send.keys, send.capture)
            else:
                pending = (send.session, observation(before, prompt), send.keys, send.capture)
        else:
            yield send.session, observation(before, prompt), send.kind, send.keys, send.capture
    if pending:
        yield pending[0], pending[1], "text", pending[2], pending[3]


def harvest(repos: Iterable[str | Path], max_entries: int = 64, prompt: str | None = None) -> dict[str, Any]:
    """The experience file's content for these repositories (see the module docstring)."""
    if max_entries < 1:
        raise HarvestError(f"--max-entries must be >= 1 (got {max_entries})")
    tables: dict[str, dict[tuple[str, str], list[Any]]] = {"decision": {}, "command": {}}
    tasks: list[dict[str, str]] = []
    sources, count = [], 0
    for raw in repos:
        repo = repo_path(raw)
        manifest, initial, sends = read_sends(repo)
        sources.append(str(repo))
        seen_prompt = prompt if prompt is not None else str(manifest.get("prompt") or TOWER_PROMPT)
        for session, obs, kind, keys, after in actions(sends, initial, seen_prompt):
            count += 1
            where = f"{repo.name}:{session}"
            if kind == "text":
                decision, hint = f"text:type {keys}", f"text type {keys}"
            else:
                decision, hint = f"ctrl:press {keys}", f"ctrl press {keys.lower()}"
            _add(tables["decision"], obs, f"seen at {where}", decision)
            _add(tables["command"], hint, f"keys of {decision}", keys)
            if kind == "ctrl" and keys == "Enter" and obs.startswith(TOWER_PROMPT) and obs != TOWER_PROMPT.rstrip():
                expected = _first_output(after, obs, seen_prompt)
                task = {"command": obs[len(TOWER_PROMPT):].strip(), "expected": expected}
                if expected and task not in tasks:
                    tasks.append(task)
    experience = {}
    for name, rows in tables.items():
        ranked = sorted(rows.values(), key=lambda r: -r[3])[:max_entries]  # stable: first seen wins ties
        experience[name] = [[q, k, v, float(w)] for q, k, v, w in ranked]
    return {"format": FORMAT, "version": 1, "sources": sources, "actions": count,
            "experience": experience, "tasks": tasks}


def _add(table: dict[tuple[str, str], list[Any]], query: str, key: str, value: str) -> None:
    row = table.setdefault((query, value), [query, key, value, 0])
    row[3] += 1


def _first_output(screen: str, command_line: str, prompt: str) -> str:
    """The first line printed after `command_line` on a screen (not a prompt line)."""
    rows = [row.rstrip() for row in screen.split("\n")]
    for i in range(len(rows) - 1, -1, -1):
        if observation(rows[i], prompt) == command_line:
            following = rows[i + 1] if i + 1 < len(rows) else ""
            if following and not following.startswith(prompt.rstrip() or TOWER_PROMPT.rstrip()):
                return following
            return ""
    return ""


def write_experience(data: Mapping[str, Any], out: str | Path) -> Path:
    path = Path(out)
    try:
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise HarvestError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def load_experience(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarvestError(f"{path}: not a readable experience file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("experience"), dict):
        raise HarvestError(f"{path}: not an experience file (no 'experience' object)")
    return data


def seed_genome(data: Mapping[str, Any], instructions: Sequence[str] = (), **overrides: Any) -> TowerGenome:
    """A tower genome whose decision/command experience is the harvest, plus the default way
    to start a task and to stop one; with `instructions` (the i-th for the i-th harvested
    task, as in `task_suite`), the command rows that map what was asked to what was typed."""
    experience = {name: tuple(ExperienceEntry(*row) for row in rows)
                  for name, rows in data["experience"].items() if rows}
    experience["decision"] = experience.get("decision", ()) + default_experience()["decision"]
    asked = tuple(ExperienceEntry(instruction, f"harvested task {i + 1}", found["command"])
                  for i, (found, instruction) in enumerate(zip(data.get("tasks") or [], instructions)))
    experience["command"] = asked + experience.get("command", ())
    return TowerGenome(**{"experience": experience, **overrides})


def task_suite(data: Mapping[str, Any], instructions: Sequence[str], name: str) -> dict[str, Any]:
    """The harvested tasks as a task suite (YAML-ready): the i-th command gets the i-th
    instruction (what a person would have asked; it must not contain the command); commands
    past the instructions given are left out. Every task is `train` (tier 1, tag `harvested`)."""
    tasks = []
    for i, (found, instruction) in enumerate(zip(data.get("tasks") or [], instructions)):
        tasks.append({"id": f"harvested-{i + 1}", "instruction": instruction, "split": "train", "tier": 1,
                      "tags": ["harvested"], "check": {"output": [found["expected"]]},
                      "solution": [found["command"]]})
    return {"name": name, "version": 1, "tasks": tasks}
