"""Graph genomes: the task level's op graph as data, type-checked before rendering, varied by
typed operators; an ill-typed graph is refused with one line and never rendered."""
from __future__ import annotations

import ast
import json
import random
from typing import Any

import numpy as np
import pytest

from harness_tower.errors import GenomeError
from harness_tower.ft.build import MAX_NODES
from harness_tower.genome import DEFAULT_GRAPH, TowerGenome
from harness_tower.render import render
from populations.operators import graph
from populations.tower import TowerSpecies


def nodes(*edits: tuple[int, dict[str, Any]]) -> list[dict[str, Any]]:
    out = [json.loads(json.dumps(n)) for n in DEFAULT_GRAPH]
    for i, change in edits:
        out[i] = {**out[i], **change}
    return out


def test_the_default_graph_is_left_out_of_the_canonical_form_and_a_new_one_renders() -> None:
    plain = TowerGenome()
    assert plain.graph is None and "graph" not in plain.to_dict()
    assert TowerGenome(graph=tuple(nodes())) == plain  # the default spelled out is the default
    # the command expert asked with the instruction alone, its top-k pinned
    changed = nodes((5, {"in": ["asked", "asked"], "topk": 3}))
    del changed[4]  # the joined query, which nothing reads now
    g = TowerGenome.from_dict({**plain.to_dict(), "graph": changed})
    assert g.hash() != plain.hash() and TowerGenome.from_dict(json.loads(g.canonical_json())) == g
    source = render(g, 1)
    module: dict[str, Any] = {"__name__": "rendered"}
    exec(compile(source, "h1.py", "exec"), module)  # noqa: S102 - a program this genome renders, read not run
    assert module["GRAPH"] == [dict(n) for n in g.nodes]  # what h1 builds is what the genome holds
    ast.parse(render(g, 3))


@pytest.mark.parametrize(("graph_nodes", "message"), [
    (nodes((6, {"in": ["screen"]})), r"graph node 'type' \(send_text\): .*must give Text, but Capture gives Screen"),
    (nodes((2, {"op": "fly"})), r"graph node 'look' \(fly\): unknown op"),
    (nodes((2, {"in": ["decision"]})), r"graph node 'look' \(fixation\): input 'decision' is not a node before it"),
    (nodes((3, {"table": "source"})), r"graph node 'decision' \(expert\): table must be one of decision, command"),
    (nodes((16, {"max_iterations": 0})), r"'task' \(recurrent\): max_iterations must be an integer in 1..50"),
    (nodes((16, {"max_iterations": True})), r"max_iterations must be an integer in 1..50, got True"),
    (nodes((7, {"value": "x" * 65})), r"'enter' \(const\): value must be one printable line"),
    (nodes((12, {"branches": {"text": "type_line"}}), (10, {"id": "press"})), "'press' is not used by the output"),
    (nodes()[:-1], r"the output must give Status, it gives Bool"),
    (nodes() + nodes()[:1], r"graph node 'asked' \(instruction\): id is used twice"),
    (nodes((4, {"extra": 1})), r"'query' \(join\): unknown field\(s\) extra"),
    ([{"id": f"n{i}", "op": "done", "in": []} for i in range(MAX_NODES + 1)], "graph must be a list of 1..48 nodes"),
])
def test_an_ill_formed_graph_is_refused_with_one_line_naming_the_node(graph_nodes: list[dict[str, Any]],
                                                                     message: str) -> None:
    with pytest.raises(GenomeError, match=f"^genome: .*{message}") as err:
        TowerGenome.from_dict({"graph": graph_nodes})
    assert "\n" not in str(err.value)


def test_typed_operators_make_graphs_that_build() -> None:
    r = random.Random(3)
    genome = TowerGenome()
    made, kinds = 0, set()
    for _ in range(300):
        op = r.choice([graph.change_param, graph.rewire, graph.insert_node, graph.delete_node])
        child = op(genome.nodes, r)
        if child == list(genome.nodes):
            continue
        genome = genome.replace(graph=tuple(child))  # raises if the operator made an invalid graph
        made += 1
        kinds |= {n["op"] for n in child}
        if len(genome.nodes) > 30:
            genome = TowerGenome()
    assert made > 200
    assert {"either", "prompt_returned", "sequential", "join", "expert"} <= kinds  # insertions of each type


def test_crossover_exchanges_typed_subgraphs() -> None:
    r = random.Random(5)
    a = TowerGenome(graph=tuple(graph.insert_node(DEFAULT_GRAPH, random.Random(1))))
    b = TowerGenome(graph=tuple(graph.rewire(DEFAULT_GRAPH, random.Random(2))))
    seen = set()
    for _ in range(40):
        c1, c2 = graph.exchange(a.nodes, b.nodes, r)
        for child in (c1, c2):
            seen.add(TowerGenome(graph=tuple(child)).hash())  # every child builds
    assert len(seen) > 4


def test_the_species_counts_graph_children_and_refusals() -> None:
    species = TowerSpecies(depth=1, mutations={"graph_insert": 1.0})
    rng = np.random.default_rng(0)
    children = species.mutate([TowerGenome()] * 6, rng)
    counts = species.take_variation()
    assert counts.get("graph_children", 0) >= 6 and all(c.graph is not None for c in children)
    assert species.take_variation() == {}  # taken once
    # two graphs near the node limit: an exchange that would pass it is refused, the parents' graphs kept
    big, r = list(DEFAULT_GRAPH), random.Random(1)
    while len(big) < MAX_NODES - 3:
        big = graph.insert_node(big, r)
    a = TowerGenome(graph=tuple(big))
    b = TowerGenome(graph=tuple(graph.rewire(big, random.Random(7))))
    kids = species.mate([(a, b)] * 20, rng)
    counts = species.take_variation()
    assert counts.get("graph_refused", 0) > 0
    assert all(len(k.nodes) <= MAX_NODES for pair in kids for k in pair)
