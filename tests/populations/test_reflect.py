"""Reflective mutation: failed tasks read back become proposed rows, or refusals with a reason."""
from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from harness_tower.ft.build import NODE_OPS
from harness_tower.genome import DEFAULT_GRAPH
from harness_tower.tasks import load_suite
from populations.operators import graph as graph_ops
from populations.reflect import Attempt, Reflector
from populations.tower import TowerSpecies
from tests.harness_tower.expert_servers import (  # noqa: F401 - a fixture
    ScriptedEndpoint,
    endpoints,
    free_port,
    make_checkpoint,
)

SUITE = load_suite("shell")


def attempt(task_id: str, typed: str, passed: bool) -> Attempt:
    return Attempt(task_id, SUITE.task(task_id).instruction, typed, passed)


PASSED = [attempt("text-count-errors", "grep -c ERROR app.log\n", True),
          attempt("print-hello-world", "echo hello world\n", True)]
FAILED = attempt("file-count-lines", "ls *.log | wc -l\n", False)  # "How many lines does shopping.txt have? ..."


def test_retrieval_proposes_the_nearest_passed_command_that_fits_the_failed_instruction() -> None:
    r = Reflector("retrieval")
    r.observe(["a"], PASSED)
    r.observe(["b"], [FAILED])
    assert r.propose("a", 0.0) is None  # it failed nothing
    p = r.propose("b", 0.0)
    assert p is not None and p.row is not None and p.task_id == "file-count-lines"
    assert p.row.query == FAILED.instruction and p.row.key.startswith("reflected from ")
    assert p.row.value not in FAILED.lines and "{" in p.row.value  # a template, not a copy of what failed
    assert "failed: " + FAILED.instruction in p.prompt and p.backend == "retrieval"


def test_retrieval_refuses_when_no_passed_command_fits() -> None:
    r = Reflector("retrieval")
    r.observe(["a"], [attempt("print-hello-world", "echo hello world\n", True)])
    r.observe(["b"], [attempt("print-hello-world", "echo hi\n", False)])  # only its own task passed elsewhere
    p = r.propose("b", 0.0)
    assert p is not None and p.row is None and p.reason.startswith("refused: no passed task")


def test_retrieval_reads_the_species_library_of_known_rows_too() -> None:
    """A train task failed before anyone passed anything: its nearest library row (here its own
    reference solution, generalised) is the proposal; a held-out instance of the same kind is
    answered from the same row, filled with its own words."""
    species = TowerSpecies(depth=1, reflection=1.0)
    failed = attempt("file-append-todo", "echo call mom > todo.txt\n", False)
    species.reflector.observe(["b"], [failed])
    p = species.reflector.propose("b", 0.0)
    assert p is not None and p.row is not None
    assert p.reason == "row from passed task library: file-append-todo: reference"
    assert p.row.value == "echo {words} >> {file}"
    near = attempt("near-file-append", "", False)
    species.reflector.observe(["c"], [near])
    q = species.reflector.propose("c", 0.0)
    assert q is not None and q.row is not None and q.row.value == "echo {words} >> {file}"


def test_memory_is_ordered_by_content_so_a_replay_proposes_the_same() -> None:
    one, two = Reflector("retrieval"), Reflector("retrieval")
    one.observe(["a"], PASSED)
    one.observe(["b"], [FAILED])
    two.observe(["b"], [FAILED])
    two.observe(["a"], list(reversed(PASSED)))
    p1, p2 = one.propose("b", 0.5), two.propose("b", 0.5)
    assert p1 is not None and p2 is not None and p1.row == p2.row


@pytest.mark.parametrize("answer, why", [
    ("wc -l < shopping.txt", None),
    ("", "an empty answer"),
    ("x" * 300, "longer than 200 characters"),
    ("ls *.log | wc -l", "the command that already failed"),
    ("echo a\u0007b", "not one printable line"),
    ("graph: [{\"id\": ", "a graph that is not JSON"),
    ("graph: {\"id\": \"t\"}", "a graph that is not a list of nodes"),
])
def test_an_openai_answer_becomes_a_row_or_a_refusal(endpoints: Callable[..., ScriptedEndpoint],  # noqa: F811
                                                      answer: str, why: str | None, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWER_EXPERT_CACHE", "off")
    ep = endpoints(answer)
    r = Reflector("openai", experts={"openai": {"base_url": ep.url, "model": "m", "retries": 0}})
    r.observe(["a"], PASSED)
    r.observe(["b"], [FAILED])
    p = r.propose("b", 0.0)
    assert p is not None and p.backend == "openai" and len(ep.requests) == 1
    sent = json.dumps(ep.requests[0][1])
    assert FAILED.instruction in sent and "grep -c ERROR app.log" in sent  # examples: the passed tasks
    if why is None:
        assert p.row is not None and p.row.value == "wc -l < {file}" and p.reason == "row from the model"
        assert p.tokens == 7 + 3  # what the endpoint reported (prompt + completion)
    else:
        assert p.row is None and p.reason == f"refused: {why}"


def test_an_unreachable_endpoint_is_a_refusal_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWER_EXPERT_CACHE", "off")
    url = f"http://127.0.0.1:{free_port()}/v1"
    r = Reflector("openai", experts={"openai": {"base_url": url, "retries": 0, "timeout": 2}})
    r.observe(["a"], PASSED)
    r.observe(["b"], [FAILED])
    p = r.propose("b", 0.0)
    assert p is not None and p.row is None and p.reason.startswith("refused: ") and url not in p.reason


def test_a_tower_child_made_by_reflection_carries_the_row_and_falls_back_when_refused() -> None:
    species = TowerSpecies(seeds=["literal_line"], reflection=1.0)
    parent = species.seed_genomes[0]
    species.learn(parent, [{"task_id": "text-count-errors", "passed": True, "typed": "grep -c ERROR app.log\n"},
                           {"task_id": "file-count-lines", "passed": False, "typed": "ls *.log | wc -l\n"}])
    (child,) = species.mutate([parent], np.random.default_rng(1))
    (proposal,) = species.take_proposals()
    assert proposal.row is not None and proposal.child == child.hash()
    assert child.experience["command"][0] == proposal.row
    assert species.take_proposals() == []  # taken once
    stranger = species.seed_genomes[0].__class__(topk=3)  # failed nothing the reflector knows of
    species.mutate([stranger], np.random.default_rng(1))  # ordinary variation: nothing proposed
    assert species.take_proposals() == []
    with pytest.raises(Exception, match="reflection_backend must be one of retrieval, openai, accordion"):
        TowerSpecies(reflection=0.5, reflection_backend="oracle")


def test_retrieval_proposes_the_graph_a_task_was_passed_under_when_no_row_fits() -> None:
    graph = tuple(graph_ops.insert_node(DEFAULT_GRAPH, random.Random(1)))
    r = Reflector("retrieval")
    r.observe(["a"], [attempt("print-hello-world", "echo hello world\n", True)], graph)
    r.observe(["b"], [attempt("print-hello-world", "echo hi\n", False)])  # no row fits: its own task only
    p = r.propose("b", 0.0, None)
    assert p is not None and p.edit and p.graph == graph and p.row is None
    assert p.reason == "graph from passed task print-hello-world"
    assert r.propose("b", 0.0, graph).reason.startswith("refused: ")  # already its graph: nothing to take


def test_a_graph_that_does_not_build_is_refused_and_the_child_falls_back(
        endpoints: Callable[..., ScriptedEndpoint], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("TOWER_EXPERT_CACHE", "off")
    ep = endpoints('graph: [{"id": "t", "op": "fly", "in": []}]')  # an op the library does not have
    species = TowerSpecies(seeds=["literal_line"], reflection=1.0, reflection_backend="openai")
    species.use_experts({"openai": {"base_url": ep.url, "model": "m", "retries": 0}})
    parent = species.seed_genomes[0]
    species.learn(parent, [{"task_id": "file-count-lines", "passed": False, "typed": "ls *.log | wc -l\n"}])
    (child,) = species.mutate([parent], np.random.default_rng(1))
    (proposal,) = species.take_proposals()
    assert not proposal.edit and proposal.graph is None and proposal.child is None
    assert proposal.reason == "refused: genome: graph node 't' (fly): unknown op (known: " + \
        ", ".join(NODE_OPS) + ")"
    assert child.hash() != parent.hash()  # ordinary variation made it


def test_the_accordion_backend_asks_the_runs_checkpoint_and_refuses_garbage(tmp_path: Path) -> None:
    ck = make_checkpoint(tmp_path / "tiny.pt")  # untrained: its answer is bytes of noise, deterministic
    r = Reflector("accordion", experts={"accordion": {"checkpoint": str(ck)}})
    r.observe(["a"], PASSED)
    r.observe(["b"], [FAILED])
    p = r.propose("b", 0.0)
    assert p is not None and p.backend == "accordion" and p.row is None
    assert p.reason == "refused: not one printable line" and p.tokens > 0 and p.answer  # the bytes it spent, kept
    assert FAILED.instruction + "\n=> " in p.prompt  # the byte model's own prompt format
    none = Reflector("accordion")  # no checkpoint in the run config: refused, the run goes on
    none.observe(["b"], [FAILED])
    q = none.propose("b", 0.0)
    assert q is not None and q.row is None and "no checkpoint is configured" in q.reason


def test_one_reflective_child_answers_several_failed_tasks() -> None:
    species = TowerSpecies(seeds=["literal_line"], reflection=1.0, reflection_rows=3)
    parent = species.seed_genomes[0]
    failed = ["file-append-todo", "python-big-power", "text-sum-column", "file-make-folder"]
    species.learn(parent, [{"task_id": t, "passed": False, "typed": "true\n"} for t in failed])
    (child,) = species.mutate([parent], np.random.default_rng(1))
    proposals = species.take_proposals()
    assert len(proposals) == 3 and {p.task_id for p in proposals} < set(failed)
    assert all(p.row is not None and p.child == child.hash() for p in proposals)
    assert list(child.experience["command"][:3]) == [p.row for p in proposals]
    with pytest.raises(Exception, match="reflection_rows must be an integer in 1..8"):
        TowerSpecies(reflection=0.5, reflection_rows=0)
