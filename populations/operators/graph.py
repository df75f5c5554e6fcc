"""Graph variation: pure functions over a task level's op graph (a list of nodes, see
`harness_tower.ft.build`), DEAP style with an explicit RNG.

Every operator is type-aware (it only connects a node to one that gives what the input
takes) and returns a new node list with the nodes its output no longer uses pruned; it may
still make a graph the builder refuses (a table the genome lacks, more nodes than allowed):
the species checks each child by building it and counts what was refused. An operator that
finds nothing to change returns the nodes unchanged.

>>> import random
>>> from harness_tower.genome import DEFAULT_GRAPH
>>> g = [dict(n) for n in DEFAULT_GRAPH]
>>> len(delete_node(g, random.Random(0))) < len(g)  # a stage bypassed, what only it read pruned
True
>>> len(insert_node(g, random.Random(1))) > len(g)
True
"""
from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness_tower.ft.build import MAX_NODES, NODE_OPS, TABLES, inputs_of, used_ids
from harness_tower.genome import copy_json

Node = dict[str, Any]
# what a const that feeds a key press may become
KEYS = ("Enter", "C-c", "C-d", "Escape", "q")
# a numeric param's range when a node leaves it to the level (the step starts from the middle)
START = {"topk": 2, "max_iterations": 6, "radius": 1, "chunk": 16}


def gives(node: Mapping[str, Any]) -> str:
    return NODE_OPS[node["op"]].gives


def copy(nodes: Sequence[Mapping[str, Any]]) -> list[Node]:
    """Nodes an operator may change: a deep copy (the genome's own JSON copy)."""
    return [copy_json(n) for n in nodes]


def prune(nodes: list[Node]) -> list[Node]:
    """The nodes the output uses, in their order."""
    keep = used_ids(nodes)
    return [n for n in nodes if n["id"] in keep]


def fresh_id(nodes: Sequence[Mapping[str, Any]], stem: str) -> str:
    """`stem_k` for the smallest k not taken (a copied node's suffix replaced, not stacked)."""
    stem = re.sub(r"(_\d+)+$", "", stem)[:20] or "node"
    taken = {n["id"] for n in nodes}
    k = 1
    while f"{stem}_{k}" in taken:
        k += 1
    return f"{stem}_{k}"[:24]


def edges(nodes: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, int]]:
    """(consumer index, "in" or "branches", position) of every input of every node."""
    out: list[tuple[int, str, int]] = []
    for i, n in enumerate(nodes):
        out.extend((i, "in", k) for k in range(len(n["in"])))
        out.extend((i, "branches", k) for k in range(len(n.get("branches", {}))))
    return out


def source(node: Node, field: str, k: int) -> str:
    return str(node["in"][k] if field == "in" else list(node["branches"].values())[k])


def redirect(node: Node, field: str, k: int, to: str) -> None:
    if field == "in":
        node["in"][k] = to
    else:
        kind = list(node["branches"])[k]
        node["branches"][kind] = to


def change_param(nodes: Sequence[Mapping[str, Any]], rng: random.Random) -> list[Node]:
    """One node's parameter changed: an integer stepped within its range, an expert's table
    swapped, a key press's key changed."""
    out = copy(nodes)
    feeds_key = {source(out[i], f, k) for i, f, k in edges(out) if out[i]["op"] == "send_ctrl"}
    choices = [(i, name) for i, n in enumerate(out) for name, p in NODE_OPS[n["op"]].params.items()
               if p.kind in ("int", "table") or (n["op"] == "const" and n["id"] in feeds_key)]
    if not choices:
        return out
    i, name = rng.choice(choices)
    node, param = out[i], NODE_OPS[out[i]["op"]].params[name]
    if param.kind == "int":
        now = node.get(name, START.get(name, param.low))
        step = rng.choice((-2, -1, 1, 2))
        node[name] = min(param.high, max(param.low, now + step))
    elif param.kind == "table":
        node[name] = rng.choice([t for t in TABLES if t != node.get(name)] or list(TABLES))
    else:
        node[name] = rng.choice([k for k in KEYS if k != node.get(name)])
    return out


def rewire(nodes: Sequence[Mapping[str, Any]], rng: random.Random) -> list[Node]:
    """One input moved to another node before its consumer that gives the same type."""
    out = copy(nodes)
    options = []
    for i, field, k in edges(out):
        want = gives(next(n for n in out if n["id"] == source(out[i], field, k)))
        others = [n["id"] for n in out[:i] if gives(n) == want and n["id"] != source(out[i], field, k)]
        if others:
            options.append((i, field, k, others))
    if not options:
        return out
    i, field, k, others = rng.choice(options)
    redirect(out[i], field, k, rng.choice(others))
    return prune(out)


def insert_node(nodes: Sequence[Mapping[str, Any]], rng: random.Random) -> list[Node]:
    """A node put on an edge, of the edge's type: another expert stage or a join on a Text
    edge, a second predicate (the prompt is back) on a Bool edge, a key press before or after
    an action on a Status edge."""
    out = copy(nodes)
    if len(out) + 3 > MAX_NODES:
        return out
    i, field, k = rng.choice(edges(out))
    consumer = out[i]
    src = source(consumer, field, k)
    kind = gives(next(n for n in out if n["id"] == src))
    new: list[Node] = []
    if kind == "Text":
        if rng.random() < 0.5:
            new.append({"id": fresh_id(out, "expert"), "op": "expert", "in": [src], "table": rng.choice(TABLES)})
        else:
            texts = [n["id"] for n in out[:i] if gives(n) == "Text" and n["id"] != src]
            if not texts:
                return out
            pair = [src, rng.choice(texts)]
            rng.shuffle(pair)
            new.append({"id": fresh_id(out, "join"), "op": "join", "in": pair})
    elif kind == "Bool":
        look = {"id": fresh_id(out, "screen"), "op": "capture", "in": []}
        check = {"id": fresh_id(out, "returned"), "op": "prompt_returned", "in": [look["id"]]}
        new += [look, check, {"id": fresh_id(out, "either"), "op": "either", "in": [src, check["id"]]}]
    elif kind == "Status":
        key = {"id": fresh_id(out, "key"), "op": "const", "in": [], "value": rng.choice(KEYS)}
        press = {"id": fresh_id(out + [key], "press"), "op": "send_ctrl", "in": [key["id"]]}
        order = [src, press["id"]] if rng.random() < 0.5 else [press["id"], src]
        new += [key, press, {"id": fresh_id(out + [key, press], "then"), "op": "sequential", "in": order}]
    else:
        return out
    redirect(consumer, field, k, new[-1]["id"])
    return out[:i] + new + out[i:]


def delete_node(nodes: Sequence[Mapping[str, Any]], rng: random.Random) -> list[Node]:
    """A node that passes on its input's type (an expert stage, a join, a predicate pair, a
    sequence) bypassed: whoever read it reads that input instead."""
    out = copy(nodes)
    by_id = {n["id"]: n for n in out}
    options = [(n, src) for n in out[:-1] for src in n["in"]
               if n["op"] in ("expert", "join", "either", "sequential") and gives(by_id[src]) == gives(n)]
    if not options:
        return out
    node, src = rng.choice(options)
    for i, field, k in edges(out):
        if source(out[i], field, k) == node["id"]:
            redirect(out[i], field, k, src)
    return prune(out)


def exchange(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]],
             rng: random.Random) -> tuple[list[Node], list[Node]]:
    """Crossover: a node of A and one of B that give the same type, each replaced in its
    graph by a copy of the other's subgraph (the node with everything it reads)."""
    ca, cb = copy(a), copy(b)
    pairs = [(x, y) for x in ca[:-1] for y in cb[:-1] if gives(x) == gives(y)]
    if not pairs:
        return ca, cb
    x, y = rng.choice(pairs)
    return graft(ca, x["id"], cb, y["id"]), graft(cb, y["id"], ca, x["id"])


def graft(into: list[Node], at: str, donor: Sequence[Mapping[str, Any]], root: str) -> list[Node]:
    """`into` with node `at` replaced by donor's subgraph under `root` (ids renamed apart)."""
    want = {root}
    for n in reversed(donor):
        if n["id"] in want:
            want.update(inputs_of(n))
    sub = copy([n for n in donor if n["id"] in want])
    names: dict[str, str] = {}
    taken = list(into)
    for n in sub:
        names[n["id"]] = n["id"] if all(t["id"] != n["id"] for t in taken) else fresh_id(taken, n["id"])
        taken.append({"id": names[n["id"]]})
    for n in sub:
        n["id"] = names[n["id"]]
        n["in"] = [names[i] for i in n["in"]]
        if "branches" in n:
            n["branches"] = {kind: names[i] for kind, i in n["branches"].items()}
    out = copy(into)
    pos = next(i for i, n in enumerate(out) if n["id"] == at)
    for i, field, k in edges(out):
        if source(out[i], field, k) == at:
            redirect(out[i], field, k, names[root])
    return prune(out[:pos] + sub + out[pos:])
