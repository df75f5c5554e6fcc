"""Task suites: what H1 is asked to do (SPEC §11), as data read from a YAML file.

A suite names its tasks and fixes each one's split (`train`, `validation`, `test`), so that
a result on `test` was never selected on. A task is an instruction in plain language, an
optional set-up (files, commands) for its own fresh directory, a check (expected output
lines, or a verifier command whose exit status decides), tags, a difficulty tier and a
reference solution: the lines a person would type, used only to verify the suite itself.
Running a task in a sandbox and checking it is `harness_tower.checks`.

Everything wrong with a suite file is reported as one line naming the task and the field:

>>> parse_suite("name: s\\nversion: 1\\ntasks:\\n- id: a\\n  colour: red\\n", "s.yaml")
Traceback (most recent call last):
...
harness_tower.tasks.SuiteError: s.yaml: task 'a': colour: unknown field

Command line: `python -m harness_tower.tasks SUITE [--verify]` (a file or a built-in name)
prints one line per split; a bad suite gets one line and exit status 2.
"""
from __future__ import annotations

import argparse
import random
import re
import sys
from collections import Counter
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]  # no stubs in the project's environment
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from harness_tower.errors import TowerError

SPLITS = ("train", "validation", "test")
TIERS = {1: "printing", 2: "files", 3: "text processing", 4: "python", 5: "multi-step and recovery"}
Split = Literal["train", "validation", "test"]
PROMPT = "$ "  # the task terminal's prompt (Sandbox.env PS1); a row starting with it is never output
WIDTH = 100  # the sandbox's default pane width: a longer expected line would wrap
MAX_OUTPUT_LINES = 20  # of the pane's 30 rows: the expected lines must fit on the final screen
MAX_INSTRUCTION = 300
ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")  # also the task's directory name
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # not typeable as a text key (SPEC §3)


class SuiteError(TowerError):
    """A suite that cannot be used; the message is one line naming the task and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Setup(_Strict):
    """What a task's fresh directory holds before H1 starts: files (relative name -> text),
    then shell commands run there in order (the first failure ends the set-up)."""

    files: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    commands: tuple[StrictStr, ...] = ()

    @field_validator("files")
    @classmethod
    def _relative_names(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            parts = PurePosixPath(name).parts
            if (not name or name.startswith("/") or _CONTROL.search(name)
                    or any(part in (".", "..") for part in parts) or name.endswith("/")):
                raise ValueError(f"{name!r} is not a plain relative file name")
            for parent in PurePosixPath(name).parents[:-1]:
                if str(parent) in files:
                    raise ValueError(f"{str(parent)!r} is both a file and a folder")
        return files


class Check(_Strict):
    """Exactly one of: `output`, lines the terminal must have printed (judged like the
    validator `task_correct`), or `verify`, a shell command run in the task's directory
    after H1 finishes (the terminal's final text on its stdin), whose exit status decides."""

    output: tuple[StrictStr, ...] | None = None
    verify: StrictStr | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Check:
        if (self.output is None) == (self.verify is None):
            has = "neither" if self.output is None else "both"
            raise ValueError(f"needs exactly one of 'output' or 'verify' (has {has})")
        return self

    @field_validator("output")
    @classmethod
    def _showable(cls, lines: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if lines is None:
            return None
        lines = tuple(line.rstrip() for line in lines)  # the judge compares rows right-stripped
        if not lines or not lines[0] or not lines[-1]:
            raise ValueError("needs at least one line, and no blank first or last line")
        if len(lines) > MAX_OUTPUT_LINES:
            raise ValueError(f"{len(lines)} lines do not fit on the final screen (at most {MAX_OUTPUT_LINES})")
        for line in lines:
            if line.startswith(PROMPT):  # judged as the shell's own prompt row, never as output
                raise ValueError(f"line {line!r} starts with the prompt {PROMPT!r}")
            if len(line) > WIDTH or _CONTROL.search(line):
                raise ValueError(f"line {line!r} does not fit on one row of a {WIDTH}-column terminal")
        return lines

    @field_validator("verify")
    @classmethod
    def _nonblank(cls, command: str | None) -> str | None:
        if command is not None and not command.strip():
            raise ValueError("is empty")
        return command


class Task(_Strict):
    """One task of a suite."""

    id: StrictStr
    instruction: StrictStr
    split: Split
    tier: StrictInt = Field(ge=1, le=5)
    tags: tuple[StrictStr, ...] = ()
    setup: Setup = Field(default_factory=Setup)
    check: Check
    solution: tuple[StrictStr, ...] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not lower-case letters, digits and '-' (at most 48)")
        return value

    @field_validator("instruction")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip() or _CONTROL.search(value) or len(value) > MAX_INSTRUCTION:
            raise ValueError(f"must be one non-empty line of at most {MAX_INSTRUCTION} characters")
        return value

    @field_validator("solution")
    @classmethod
    def _typeable(cls, lines: tuple[str, ...]) -> tuple[str, ...]:
        for line in lines:
            if _CONTROL.search(line):  # each line is typed as text keys, then Enter
                raise ValueError(f"line {line!r} holds a control character (a tab?); it cannot be typed")
        return lines

    @model_validator(mode="after")
    def _coherent(self) -> Task:
        for line in self.solution:
            if line.strip() and re.search(rf"(?<!\w){re.escape(line.strip())}(?!\w)", self.instruction):
                raise ValueError(f"instruction: gives away the command {line.strip()!r}")
            if self.check.output and line.rstrip() in self.check.output:
                # An answer row repeating the submitted line is judged as echoed input.
                raise ValueError(f"check.output: line {line.rstrip()!r} is also a line of the solution")
        if self.tier == 5 and len(self.solution) < 2:
            raise ValueError("solution: a tier-5 task types a failing first attempt, then the fix (2+ lines)")
        return self


class Suite(_Strict):
    """A named, versioned list of tasks with unique ids."""

    name: StrictStr
    version: StrictInt = Field(ge=1)
    description: StrictStr = ""
    tasks: tuple[Task, ...] = Field(min_length=1)

    def split(self, name: str) -> tuple[Task, ...]:
        """The tasks of one split, in file order."""
        if name not in SPLITS:
            raise SuiteError(f"suite {self.name!r}: no split {name!r} ({', '.join(SPLITS)})")
        return tuple(task for task in self.tasks if task.split == name)

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise SuiteError(f"suite {self.name!r}: no task {task_id!r}")

    def sample(self, split: str, k: int, seed: int | str) -> tuple[Task, ...]:
        """k distinct tasks of `split`, drawn by `seed` alone: the same seed gives the same draw
        in any process (a str seed is hashed with SHA-512, never with the per-process `hash`),
        so e.g. seed f"{run_seed}:{generation}" gives every individual of a generation the same
        tasks."""
        pool = self.split(split)
        if not 1 <= k <= len(pool):
            raise SuiteError(f"suite {self.name!r}: cannot draw {k} tasks from split {split!r} "
                             f"({len(pool)} tasks)")
        return tuple(random.Random(seed).sample(pool, k))

    def summary(self) -> list[str]:
        """One line per split: its task count and how many of each tier."""
        lines = []
        for split in SPLITS:
            tasks = self.split(split)
            tiers = Counter(task.tier for task in tasks)
            spread = ", ".join(f"{tier}: {tiers[tier]}" for tier in sorted(tiers))
            lines.append(f"{split}: {len(tasks)} tasks" + (f" (tier {spread})" if tasks else ""))
        return lines


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------
class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a suite's author meant one of them."""


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as `field: problem`."""
    loc = tuple(error["loc"])
    field = ".".join(str(part) for part in loc) or "suite"
    kind, given = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"{field}: unknown field"
    if kind == "missing":
        return f"{field}: missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    context = error.get("ctx") or {}
    if kind == "literal_error":
        return f"{field}: {given!r} is not one of {context.get('expected', '')}"
    if kind == "too_short":
        return f"{field}: needs at least {context.get('min_length', 1)}"
    if kind == "value_error":  # our own rules: the message names what is wrong
        # A rule across fields (on the task itself) names its field first.
        return message if not error["loc"] and ": " in message else f"{field}: {message}"
    shown = repr(given)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    hint = " - quote it" if kind == "string_type" and isinstance(given, int | float | bool) else ""
    return f"{field}: {message} (got {shown}{hint})"


def _first(errors: list[ErrorDetails]) -> ErrorDetails:
    """The error to report: an unknown field before the rest (it is often a misspelt field
    that is then also reported missing)."""
    return next((error for error in errors if error["type"] == "extra_forbidden"), errors[0])


def parse_suite(text: str, origin: str) -> Suite:
    """A suite from YAML text; `origin` (its file name) starts every error line."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError(f"{origin}: {where}not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{origin}: a suite is a mapping with name, version and tasks")
    items = raw.get("tasks")
    if not isinstance(items, list):
        raise SuiteError(f"{origin}: tasks: {'missing' if items is None else 'must be a list of tasks'}")
    tasks: list[Task] = []
    first: dict[str, int] = {}
    for number, item in enumerate(items, 1):
        ident = item.get("id") if isinstance(item, dict) else None
        who = f"task {ident!r}" if isinstance(ident, str) and ident else f"task #{number}"
        if not isinstance(item, dict):
            raise SuiteError(f"{origin}: {who}: must be a mapping of fields")
        try:
            task = Task.model_validate(item)
        except ValidationError as exc:
            raise SuiteError(f"{origin}: {who}: {_describe(_first(exc.errors()))}") from None
        if task.id in first:
            raise SuiteError(f"{origin}: task {task.id!r} (#{number}): id: duplicate of task #{first[task.id]}")
        first[task.id] = number
        tasks.append(task)
    try:
        return Suite.model_validate({**raw, "tasks": tasks})
    except ValidationError as exc:
        raise SuiteError(f"{origin}: {_describe(_first(exc.errors()))}") from None


def builtin_suites() -> list[str]:
    """The names of the suites shipped with the project (`task_suites/*.yaml`)."""
    folder = resources.files("task_suites")
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def builtin_suite_path(name: str) -> Path:
    """Where a built-in suite's file lies (outside the op library: see `task_suites`)."""
    return Path(str(resources.files("task_suites") / f"{name}.yaml"))


def load_suite(source: str | Path) -> Suite:
    """A suite from a YAML file, or a built-in suite by name (e.g. "shell")."""
    path = Path(source)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SuiteError(f"{path}: cannot be read: {exc}") from None
        return parse_suite(text, str(path))
    name = str(source)
    if name in builtin_suites():
        text = (resources.files("task_suites") / f"{name}.yaml").read_text(encoding="utf-8")
        return parse_suite(text, f"{name}.yaml")
    raise SuiteError(f"{source}: no such suite file or built-in suite (built-in: {', '.join(builtin_suites())})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness_tower.tasks",
                                     description="Check a task suite and print its splits.")
    parser.add_argument("suite", help="a suite file, or a built-in suite's name")
    parser.add_argument("--verify", action="store_true",
                        help="also type every reference solution into a sandboxed terminal and check it")
    parser.add_argument("--isolation", default="auto", choices=("auto", "bwrap", "process"))
    args = parser.parse_args(argv)
    try:
        suite = load_suite(args.suite)
        if args.verify:
            # Needs tmux and a sandbox: imported only when asked.
            from harness_tower.checks import verify_in_sandbox
            problems = verify_in_sandbox(suite, isolation=args.isolation)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise SuiteError(problems[0] + more)
    except TowerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"suite {suite.name} v{suite.version}: {len(suite.tasks)} tasks"
          + (", every reference solution passes its check" if args.verify else ""))
    for line in suite.summary():
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
