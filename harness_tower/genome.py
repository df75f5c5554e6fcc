"""The tower genome: experience + graph structure + typing mode + content source + validator params.

A genome is a frozen value with a canonical JSON form; its hash (blake2b of that JSON) names it.
Its `graph` is the task level's op graph as data (nodes in order, see `harness_tower.ft.build`);
a genome whose graph does not build (an unknown op, a wrong type, an unused node) is refused
when it is made, so an invalid graph never reaches rendering, let alone an evaluation.

>>> g = TowerGenome.default()
>>> TowerGenome.from_dict(g.to_dict()) == g
True
>>> len(g.hash())
32
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness_tower.backends import SAMPLING, check_sampling
from harness_tower.errors import GenomeError, GraphError
from harness_tower.ft import Experience, build_graph

TYPING_MODES = ("line", "statement")
CONTENT_SOURCES = ("literal", "kernel", "expert")
EXPERIENCE_TABLES = ("decision", "command", "source", "fixation")
MAX_TEXT_KEYS = 16
BACKENDS = ("retrieval", "openai", "accordion")
# backend_config keys -> (types, check, what a valid value is): sampling parameters only. Where
# a model call goes (base URL, model, checkpoint), the key and the transport are the trusted
# side's (the run config's `experts:` section, the evaluating process's environment): a genome
# is written by evolution and typed into its trajectory, and its harness is the adversary.
BACKEND_CONFIG = SAMPLING
# Fields that matter only to the expert content source; left out of the canonical JSON while
# they hold their defaults, so that adding them did not change any existing genome's hash.
EXPERT_DEFAULTS: dict[str, Any] = {"backend": "retrieval", "backend_config": {}, "source_radius": 2,
                                   "max_lines": 400, "max_bytes": 65536}
H1_SESSION = "h1_writer"


def _node(id: str, op: str, *inputs: str, **params: Any) -> dict[str, Any]:
    return {"id": id, "op": op, "in": list(inputs), **params}


# The task level's graph when a genome names none: look at the cursor's rows, decide what to
# do, fill a command from the instruction, type it (or press a key, or stop); repeat until the
# decision is done, waiting while a command still runs. Left out of the canonical JSON, so a
# genome of the default graph hashes as it did before graphs were genes.
DEFAULT_GRAPH: tuple[dict[str, Any], ...] = (
    _node("asked", "instruction"),
    _node("screen", "capture"),
    _node("look", "fixation", "screen", radius=1),
    _node("decision", "expert", "look", table="decision"),
    _node("query", "join", "decision", "asked"),
    _node("command", "slot_expert", "query", "asked", table="command"),
    _node("type", "send_text", "command"),
    _node("enter", "const", value="Enter"),
    _node("press_enter", "send_ctrl", "enter"),
    _node("type_line", "sequential", "type", "press_enter"),
    _node("press", "send_ctrl", "command"),
    _node("stop", "done"),
    {**_node("act", "switch", "decision"), "branches": {"text": "type_line", "ctrl": "press", "done": "stop"}},
    _node("finished", "chose", "decision", kind="done"),
    _node("screen_now", "capture"),
    _node("busy", "screen_busy", "screen_now"),
    _node("task", "recurrent", "act", "finished", "busy"),
)


@dataclass(frozen=True)
class ExperienceEntry:
    """One (query, key, value, weight) row; retrieval ranks rows by Jaccard(query) x weight."""

    query: str
    key: str
    value: str
    weight: float = 1.0

    def to_list(self) -> list[Any]:
        return [self.query, self.key, self.value, self.weight]


def default_experience() -> dict[str, tuple[ExperienceEntry, ...]]:
    """The experience of a genome that names none: enough to start each task and to stop."""
    return {
        # what the terminal shows (around the cursor) -> what to do
        "decision": (
            ExperienceEntry("# task:", "a new task is on the screen", "text:do the task"),
            ExperienceEntry("$", "the prompt is back", "done:the command ran", 0.5),
        ),
        # what to do and what was asked -> the command, with slots the instruction fills
        "command": (
            ExperienceEntry("print say the words", "say what was asked", "echo {text_q}"),
        ),
    }


@dataclass(frozen=True)
class TowerGenome:
    """Everything that decides how a tower behaves; rendered into `h{n}.py` by `render`."""

    experience: Mapping[str, tuple[ExperienceEntry, ...]] = field(default_factory=dict)
    topk: int = 2
    max_iterations: int = 6
    typing_mode: str = "line"
    content_source: str = "kernel"
    chunk: int = 16
    settle_timeout: float = 5.0
    child_timeout: float = 60.0
    # The expert content source: which backend generates the child's lines, its settings,
    # how many screen rows around the cursor it sees, and the bounds of one child file.
    backend: str = "retrieval"
    backend_config: Mapping[str, Any] = field(default_factory=dict)
    source_radius: int = 2
    max_lines: int = 400
    max_bytes: int = 65536
    # The task level's op graph (nodes in order; `harness_tower.ft.build`); None: DEFAULT_GRAPH.
    # Its nodes are plain JSON objects: never changed in place, variation makes new ones.
    graph: tuple[Mapping[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        if not self.experience:
            object.__setattr__(self, "experience", default_experience())
        if self.graph is not None:
            if not isinstance(self.graph, (list, tuple)):
                raise GenomeError("genome: graph must be a list of nodes")
            graph = tuple(copy_json(n) for n in self.graph)
            object.__setattr__(self, "graph", None if graph == DEFAULT_GRAPH else graph)
        self._validate()

    @property
    def nodes(self) -> tuple[Mapping[str, Any], ...]:
        """The task level's graph, the default one included."""
        return DEFAULT_GRAPH if self.graph is None else self.graph

    @classmethod
    def default(cls, **overrides: Any) -> TowerGenome:
        return cls(**overrides)

    # --- validation -------------------------------------------------------------------
    def _validate(self) -> None:
        def need(cond: bool, what: str) -> None:
            if not cond:
                raise GenomeError(f"genome: {what}")

        need(self.typing_mode in TYPING_MODES, f"typing_mode must be one of {TYPING_MODES}, got {self.typing_mode!r}")
        need(self.content_source in CONTENT_SOURCES,
             f"content_source must be one of {CONTENT_SOURCES}, got {self.content_source!r}")
        need(_is_int(self.topk) and 1 <= self.topk <= 8, f"topk must be an integer in 1..8, got {self.topk!r}")
        need(_is_int(self.max_iterations) and 1 <= self.max_iterations <= 50,
             f"max_iterations must be an integer in 1..50, got {self.max_iterations!r}")
        need(_is_int(self.chunk) and 1 <= self.chunk <= MAX_TEXT_KEYS,
             f"chunk must be an integer in 1..{MAX_TEXT_KEYS}, got {self.chunk!r}")
        for name in ("settle_timeout", "child_timeout"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                 and 0 < value <= 3600, f"{name} must be a number of seconds in (0, 3600], got {value!r}")
        need(isinstance(self.experience, Mapping), "experience must be a mapping of table name to entries")
        for table, entries in self.experience.items():
            need(table in EXPERIENCE_TABLES, f"unknown experience table {table!r} (known: {EXPERIENCE_TABLES})")
            need(isinstance(entries, tuple), f"experience.{table} must be a list of entries")
            for i, entry in enumerate(entries):
                need(isinstance(entry, ExperienceEntry), f"experience.{table}[{i}] must be an entry")
                need(all(isinstance(s, str) for s in (entry.query, entry.key, entry.value)),
                     f"experience.{table}[{i}]: query, key and value must be strings")
                need(isinstance(entry.weight, (int, float)) and math.isfinite(entry.weight) and entry.weight >= 0,
                     f"experience.{table}[{i}].weight must be a finite number >= 0")
        for table in ("decision", "command"):
            need(len(self.experience.get(table, ())) > 0, f"experience.{table} must have at least one entry")
        self._validate_expert(need)
        try:
            self.build_h1_graph()
        except GraphError as exc:
            raise GenomeError(f"genome: {exc.message}") from None

    def build_h1_graph(self) -> Any:
        """The task level's ops as its `h1.py` builds them (the graph's type check)."""
        tables = {t: Experience([e.to_list() for e in rows])  # type: ignore[misc]  # rows are 4-lists
                  for t, rows in self.experience.items() if t in ("decision", "command", "fixation") and rows}
        return build_graph(list(self.nodes), tables, H1_SESSION, topk=self.topk, max_iterations=self.max_iterations,
                           chunk=self.chunk, settle=self.settle_timeout)

    def _validate_expert(self, need: Any) -> None:
        need(self.backend in BACKENDS, f"backend must be one of {BACKENDS}, got {self.backend!r}")
        need(isinstance(self.backend_config, Mapping), "backend_config must be an object")
        why = check_sampling(self.backend_config, where="backend_config")
        need(why is None, str(why))
        need(_is_int(self.source_radius) and 0 <= self.source_radius <= 12,
             f"source_radius must be an integer in 0..12, got {self.source_radius!r}")
        need(_is_int(self.max_lines) and 1 <= self.max_lines <= 5000,
             f"max_lines must be an integer in 1..5000, got {self.max_lines!r}")
        need(_is_int(self.max_bytes) and 16 <= self.max_bytes <= 1 << 20,
             f"max_bytes must be an integer in 16..{1 << 20}, got {self.max_bytes!r}")

    # --- canonical form ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["experience"] = {t: [e.to_list() for e in entries] for t, entries in sorted(self.experience.items())}
        d["backend_config"] = dict(sorted(self.backend_config.items()))
        for name, default in EXPERT_DEFAULTS.items():
            if d[name] == default:
                del d[name]
        if self.graph is None:
            del d["graph"]
        else:
            d["graph"] = [copy_json(n) for n in self.graph]
        return d

    @classmethod
    def from_dict(cls, data: Any) -> TowerGenome:
        if not isinstance(data, Mapping):
            raise GenomeError(f"genome: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        gone = sorted(set(data) & {"task_command", "task_expected"})
        if gone:
            raise GenomeError(f"genome: {', '.join(gone)} is gone: a tower's tasks come from a task suite "
                              "(species.params.suite) and its commands from experience templates")
        unknown = sorted(set(data) - known)
        if unknown:
            raise GenomeError(f"genome: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        kwargs = dict(data)
        if "experience" in kwargs:
            kwargs["experience"] = _parse_experience(kwargs["experience"])
        try:
            return cls(**kwargs)
        except TypeError as exc:  # wrong value types reaching dataclass machinery
            raise GenomeError(f"genome: {exc}") from None

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def hash(self) -> str:
        return hashlib.blake2b(self.canonical_json().encode("utf-8"), digest_size=16).hexdigest()

    def replace(self, **changes: Any) -> TowerGenome:
        return dataclasses.replace(self, **changes)


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value with its objects' keys sorted (the canonical form of a node);
    anything that is not JSON is left for the graph check to refuse."""
    if isinstance(value, Mapping):
        return {str(k): copy_json(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [copy_json(v) for v in value]
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_experience(raw: Any) -> dict[str, tuple[ExperienceEntry, ...]]:
    if not isinstance(raw, Mapping):
        raise GenomeError("genome: experience must be an object of table name -> list of entries")
    tables: dict[str, tuple[ExperienceEntry, ...]] = {}
    for table, rows in raw.items():
        if not isinstance(rows, list):
            raise GenomeError(f"genome: experience.{table} must be a list")
        entries = []
        for i, row in enumerate(rows):
            if isinstance(row, Mapping):
                row = [row.get("query"), row.get("key"), row.get("value"), row.get("weight", 1.0)]
            if not isinstance(row, list) or len(row) not in (3, 4):
                raise GenomeError(f"genome: experience.{table}[{i}] must be [query, key, value(, weight)]")
            try:
                entries.append(ExperienceEntry(*row))
            except TypeError as exc:
                raise GenomeError(f"genome: experience.{table}[{i}]: {exc}") from None
        tables[str(table)] = tuple(entries)
    return tables


def load_genome(path: str) -> TowerGenome:
    """Read a genome JSON file; every problem becomes one GenomeError line naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise GenomeError(f"{path}: no such genome file") from None
    except IsADirectoryError:
        raise GenomeError(f"{path}: is a directory, not a genome file") from None
    except json.JSONDecodeError as exc:
        raise GenomeError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError:
        raise GenomeError(f"{path}: not UTF-8 text") from None
    try:
        return TowerGenome.from_dict(data)
    except GenomeError as exc:
        raise GenomeError(f"{path}: {exc.message}") from None
