"""A task level's op graph from data: the graph genome's nodes, built into ops.

A graph is a list of nodes in order, each `{"id": ..., "op": ..., "in": [ids], <params>}`;
a node's inputs are nodes before it (so a graph is a DAG by construction), and the last node
is the graph's output: what the level runs once per task (it gives `Status`). `build_graph`
is the one place a graph becomes ops, both where it is checked (the evaluator, before any
rendering: `harness_tower.graph`) and where it runs (the rendered `h1.py`): every op checks
the types of its inputs when it is made, so an ill-typed graph fails here, one line naming
the node, before anything runs.

Params a node leaves out take the level's own value (`topk`, `max_iterations`, `chunk`):
that is how a genome's scalar genes still reach a graph that does not pin them.

>>> g = [{"id": "say", "op": "const", "in": [], "value": "echo hi"},
...      {"id": "type", "op": "send_text", "in": ["say"]}]
>>> type(build_graph(g, {}, "s", topk=1, max_iterations=1, chunk=16, settle=1.0)).__name__
'SendText'
>>> build_graph(g[1:], {}, "s", topk=1, max_iterations=1, chunk=16, settle=1.0)
Traceback (most recent call last):
...
harness_tower.errors.GraphError: graph node 'type' (send_text): input 'say' is not a node before it
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness_tower.errors import GraphError
from harness_tower.ft.experience import Experience
from harness_tower.ft.graph import BOOL, SCREEN, STATUS, TEXT, Const, Op, Recurrent, Sequential, Switch
from harness_tower.ft.ops import (
    Capture,
    Expert,
    Fixation,
    PromptReturned,
    ScreenBusy,
    ScreenHasLine,
    SendCtrl,
    SendText,
)
from harness_tower.ft.work import Chose, Done, Either, Instruction, Join, SlotExpert

MAX_NODES = 48
MAX_INPUTS = 8
ID = re.compile(r"[a-z][a-z0-9_]{0,23}")
KIND = re.compile(r"[a-z]{1,12}")  # a decision's kind (`text:...` -> text): switch branches, chose
TABLES = ("decision", "command")  # the experience tables an expert node may read


@dataclass(frozen=True)
class Param:
    """A node parameter: `int` in [low, high], `text` (one printable line of at most `high`
    characters), `kind` (a decision kind) or `table` (one of TABLES). `level`: the level's own
    value stands in when the node leaves it out."""

    kind: str
    low: int = 0
    high: int = 0
    level: str = ""

    def check(self, value: Any) -> str | None:
        if self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high
            return None if ok else f"an integer in {self.low}..{self.high}"
        if self.kind == "text":
            ok = isinstance(value, str) and 0 < len(value) <= self.high and value.isprintable()
            return None if ok else f"one printable line of 1..{self.high} characters"
        if self.kind == "kind":
            return None if isinstance(value, str) and KIND.fullmatch(value) else "a lower-case word of 1..12 letters"
        return None if value in TABLES else f"one of {', '.join(TABLES)}"


@dataclass(frozen=True)
class NodeOp:
    """What a node of this op takes (types; `*`: 1..MAX_INPUTS of any), gives, and may set."""

    takes: tuple[str, ...] | str
    gives: str
    params: Mapping[str, Param]
    required: tuple[str, ...] = ()


TOPK = Param("int", 1, 8, level="topk")
NODE_OPS: dict[str, NodeOp] = {
    "instruction": NodeOp((), TEXT, {}),
    "capture": NodeOp((), SCREEN, {}),
    "const": NodeOp((), TEXT, {"value": Param("text", high=64)}, ("value",)),
    "fixation": NodeOp((SCREEN,), TEXT, {"radius": Param("int", 0, 12)}),
    "expert": NodeOp((TEXT,), TEXT, {"table": Param("table"), "topk": TOPK}, ("table",)),
    "slot_expert": NodeOp((TEXT, TEXT), TEXT, {"table": Param("table"), "topk": TOPK}, ("table",)),
    "join": NodeOp((TEXT, TEXT), TEXT, {}),
    "chose": NodeOp((TEXT,), BOOL, {"kind": Param("kind")}, ("kind",)),
    "either": NodeOp((BOOL, BOOL), BOOL, {}),
    "screen_busy": NodeOp((SCREEN,), BOOL, {}),
    "prompt_returned": NodeOp((SCREEN,), BOOL, {}),
    "screen_has_line": NodeOp((SCREEN,), BOOL, {"text": Param("text", high=64)}, ("text",)),
    "send_text": NodeOp((TEXT,), STATUS, {"chunk": Param("int", 1, 16, level="chunk")}),
    "send_ctrl": NodeOp((TEXT,), STATUS, {}),
    "done": NodeOp((), STATUS, {}),
    "sequential": NodeOp("*", STATUS, {}),
    "switch": NodeOp((TEXT,), STATUS, {}),  # + branches: {kind: node id giving Status}
    "recurrent": NodeOp((STATUS, BOOL), STATUS,  # + an optional third input: busy (Bool)
                        {"max_iterations": Param("int", 1, 50, level="max_iterations")}),
}
KEYS = frozenset(("id", "op", "in", "branches"))


def node_error(node: Mapping[str, Any], what: str) -> GraphError:
    return GraphError(f"graph node {node.get('id')!r} ({node.get('op')}): {what}")


def check_node(node: Any, before: Mapping[str, Any]) -> NodeOp:
    """The node's form (its op, inputs among `before`, params); types are checked by the ops."""
    if not isinstance(node, Mapping):
        raise GraphError(f"graph node must be an object, got {type(node).__name__}")
    spec = NODE_OPS.get(node.get("op"))  # type: ignore[arg-type]  # checked just below
    if spec is None:
        raise node_error(node, f"unknown op (known: {', '.join(NODE_OPS)})")
    if not isinstance(node.get("id"), str) or not ID.fullmatch(node["id"]):
        raise node_error(node, "id must be a lower-case name of 1..24 characters ([a-z][a-z0-9_]*)")
    if node["id"] in before:
        raise node_error(node, "id is used twice")
    ins = node.get("in")
    if not isinstance(ins, list) or not all(isinstance(i, str) for i in ins):
        raise node_error(node, "in must be a list of node ids")
    want = len(spec.takes) if isinstance(spec.takes, tuple) else None
    if node["op"] == "recurrent" and len(ins) == 3:
        want = 3  # with a busy predicate
    if (want is not None and len(ins) != want) or (want is None and not 1 <= len(ins) <= MAX_INPUTS):
        raise node_error(node, f"takes {want if want is not None else f'1..{MAX_INPUTS}'} input(s), got {len(ins)}")
    branches = node.get("branches", {}) if node["op"] == "switch" else None
    if node["op"] == "switch" and (not isinstance(branches, Mapping) or not branches):
        raise node_error(node, "a switch needs branches: {kind: node id}")
    for i in [*ins, *(branches or {}).values()]:
        if i not in before:
            raise node_error(node, f"input {i!r} is not a node before it")
    for kind in branches or ():
        if not isinstance(kind, str) or not KIND.fullmatch(kind):
            raise node_error(node, f"branch {kind!r} must be a lower-case word of 1..12 letters")
    unknown = sorted(set(node) - KEYS - set(spec.params))
    if unknown or ("branches" in node and node["op"] != "switch"):
        raise node_error(node, f"unknown field(s) {', '.join(unknown or ['branches'])}")
    for name in spec.required:
        if name not in node:
            raise node_error(node, f"{name} is required")
    for name, param in spec.params.items():
        if name in node and (why := param.check(node[name])) is not None:
            raise node_error(node, f"{name} must be {why}, got {node[name]!r}")
    return spec


def build_graph(nodes: Sequence[Any], tables: Mapping[str, Experience], session: str, *, topk: int,
                max_iterations: int, chunk: int, settle: float) -> Op:
    """The ops of `nodes` (see the module's docstring); returns the last node's op.

    Raises `GraphError` naming the first node that is malformed, ill-typed, reads a table the
    level lacks, or is not used by the output."""
    if not isinstance(nodes, Sequence) or not 1 <= len(nodes) <= MAX_NODES:
        raise GraphError(f"graph must be a list of 1..{MAX_NODES} nodes")
    level = {"topk": topk, "max_iterations": max_iterations, "chunk": chunk}
    built: dict[str, Op] = {}
    for node in nodes:
        spec = check_node(node, built)
        p = {name: node.get(name, level.get(param.level)) for name, param in spec.params.items()}
        try:
            built[node["id"]] = MAKE[node["op"]](node, [built[i] for i in inputs_of(node)], p, tables, session, settle)
        except GraphError as exc:
            raise node_error(node, exc.message) from None
        except KeyError as exc:
            raise node_error(node, f"the level has no experience table {exc.args[0]!r}") from None
    out = nodes[-1]
    if built[out["id"]].gives != STATUS:
        raise node_error(out, f"the output must give {STATUS}, it gives {built[out['id']].gives}")
    unused = [n["id"] for n in nodes if n["id"] not in used_ids(nodes)]
    if unused:
        raise GraphError(f"graph node {unused[0]!r} is not used by the output {out['id']!r}")
    return built[out["id"]]


def used_ids(nodes: Sequence[Mapping[str, Any]]) -> set[str]:
    """The ids the last node depends on (itself included)."""
    by_id = {n["id"]: n for n in nodes}
    seen: set[str] = set()
    todo = [nodes[-1]["id"]]
    while todo:
        i = todo.pop()
        if i in seen or i not in by_id:
            continue
        seen.add(i)
        todo.extend(inputs_of(by_id[i]))
    return seen


def inputs_of(node: Mapping[str, Any]) -> list[str]:
    """Every node id a node reads: its inputs, then a switch's branches."""
    return [*node["in"], *node.get("branches", {}).values()]


Make = Callable[[Mapping[str, Any], list[Op], dict[str, Any], Mapping[str, Experience], str, float], Op]
MAKE: dict[str, Make] = {
    "instruction": lambda n, i, p, t, s, w: Instruction(),
    "capture": lambda n, i, p, t, s, w: Capture(s),
    "const": lambda n, i, p, t, s, w: Const(p["value"]),
    # a fixation reads the level's `fixation` policy table when it has one
    "fixation": lambda n, i, p, t, s, w: Fixation(i[0], p["radius"] or 0, policy=t.get("fixation")),
    "expert": lambda n, i, p, t, s, w: Expert(i[0], t[p["table"]], p["topk"], name=n["id"]),
    "slot_expert": lambda n, i, p, t, s, w: SlotExpert(i[0], i[1], t[p["table"]], p["topk"], name=n["id"]),
    "join": lambda n, i, p, t, s, w: Join(*i),
    "chose": lambda n, i, p, t, s, w: Chose(i[0], p["kind"]),
    "either": lambda n, i, p, t, s, w: Either(*i),
    "screen_busy": lambda n, i, p, t, s, w: ScreenBusy(*i),
    "prompt_returned": lambda n, i, p, t, s, w: PromptReturned(*i),
    "screen_has_line": lambda n, i, p, t, s, w: ScreenHasLine(i[0], p["text"]),
    "send_text": lambda n, i, p, t, s, w: SendText(s, i[0], p["chunk"], w),
    "send_ctrl": lambda n, i, p, t, s, w: SendCtrl(s, i[0], w),
    "done": lambda n, i, p, t, s, w: Done(),
    "sequential": lambda n, i, p, t, s, w: Sequential(*i),
    "switch": lambda n, i, p, t, s, w: Switch(i[0], dict(zip(n["branches"], i[1:]))),
    "recurrent": lambda n, i, p, t, s, w: Recurrent(i[0], i[1], p["max_iterations"], s, w,
                                                    i[2] if len(i) > 2 else None),
}
