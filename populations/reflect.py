"""Reflective mutation: a task an individual failed, read back, becomes a proposed experience row.

After each evaluation the species tells its `Reflector` what every task asked, what H1 typed
for it and whether it passed (`observe`). When a child is made by reflection, the reflector
takes one task its parent failed and proposes a command row for that instruction
(`propose`):

- `retrieval` (offline, deterministic): the nearest instruction (Jaccard over words) among
  the tasks any individual of the run has passed and the species' library of command rows
  (the train split's reference solutions and harvested sessions: `examples`), whose command
  — generalised into a slot template (`wc -l < {file}`) — can be filled from the failed
  instruction and gives something other than what was typed;
- `openai`: the run's configured OpenAI-compatible endpoint (`experts.openai`, never a
  genome's) is shown the nearest passed tasks as examples and the failed instruction, and
  answers with one command line;
- `accordion`: the same question put to the run's MicroAccordion checkpoint
  (`experts.accordion.checkpoint`), loaded in the driver, in the byte model's own prompt format.

A proposal may also be a graph edit: the task level's graph of an individual that passed
the task (retrieval, when no row fits: the nearest passed task solved under another graph
than the parent's), or a model's answer `graph: [nodes...]`; the species builds it like any
genome's graph, so one that does not type-check (an unknown op, a wrong input) is refused.

Every proposal is kept with its prompt, answer, cost and what became of it (a row or a
graph, or why it was refused: no answer, unreachable, not one printable line, too long, the
same as what failed, a graph that does not build); a refused proposal leaves the child to
ordinary variation. Memory is bounded and
ordered by content, so a replayed run (resume) proposes what the live run proposed.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness_tower.genome import ExperienceEntry
from harness_tower.slots import extract, fill, generalise

BACKENDS = ("retrieval", "openai", "accordion")
MODEL_SAMPLING = {"temperature": 0, "max_tokens": 48}  # one short line, the same answer for the same question
MAX_ANSWER = 200  # characters of a proposed command line
MAX_GRAPH_ANSWER = 4000  # characters of a proposed graph (`graph: [...]`)
Graph = tuple[Mapping[str, Any], ...] | None  # a task level's nodes; None: the default graph
MAX_SUCCESSES = 512  # passed tasks remembered (the oldest by content order are dropped)
MAX_FAILURES = 4096  # genomes whose failures are remembered
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, order=True)
class Attempt:
    """One task of an evaluation, as the reflector sees it."""

    task_id: str
    instruction: str
    typed: str  # what H1 typed for it, Enter as a newline
    passed: bool

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(line.strip() for line in self.typed.split("\n") if line.strip())


@dataclass
class Proposal:
    """What reflection proposed for one child, and what became of it."""

    parent: str  # hash of the genome it was made for
    task_id: str  # the failed task it answers
    backend: str
    prompt: str
    answer: str
    seconds: float
    tokens: int
    row: ExperienceEntry | None  # None: refused (see reason)
    reason: str
    child: str | None = None  # hash of the child it made, once made
    used: bool = False  # the child was among the offspring evaluated (set by the engine)
    graph: Graph = None  # a graph edit: the task level's proposed nodes (with `edit`)
    edit: bool = False  # the proposal is a graph edit (graph None then: back to the default graph)


@dataclass
class Reflector:
    backend: str = "retrieval"
    experts: Mapping[str, Any] | None = None  # the run config's `experts:` section
    shots: int = 3
    successes: dict[tuple[str, str], Attempt] = field(default_factory=dict)  # (instruction, template)
    failures: dict[str, tuple[Attempt, ...]] = field(default_factory=dict)  # genome hash -> failed tasks
    examples: dict[tuple[str, str], Attempt] = field(default_factory=dict)  # the library's rows, never dropped
    graphs: dict[tuple[str, str], tuple[str, Graph]] = field(default_factory=dict)  # (instruction, graph json) ->
    # (task id, graph) of a task passed under that graph

    def know(self, rows: Sequence[ExperienceEntry]) -> None:
        """Command rows known to answer their query (a train reference solution, a harvested
        session), as examples beside the run's own successes."""
        for row in rows:
            line = fill(row.value, extract(row.query))
            if line is not None and line.strip() and "\n" not in line:
                self.examples.setdefault((row.query, row.value), Attempt(f"library: {row.key}", row.query, line, True))

    def observe(self, genome_hashes: Sequence[str], attempts: Sequence[Attempt], graph: Graph = None) -> None:
        """Remember an evaluation: its failed tasks under each hash (the genome and what its
        children start from), its passed ones as examples for everyone (with the graph they
        were passed under)."""
        failed = tuple(sorted(a for a in attempts if not a.passed and a.instruction))
        for h in genome_hashes:
            if failed:
                self.failures[h] = failed
                while len(self.failures) > MAX_FAILURES:
                    self.failures.pop(next(iter(self.failures)))
        for a in attempts:
            if a.passed and len(a.lines) == 1:  # one command answered it: a template to reuse
                template = generalise(a.lines[0], extract(a.instruction))
                self.successes.setdefault((a.instruction, template), a)
            if a.passed:
                self.graphs.setdefault((a.instruction, _graph_key(graph)), (a.task_id, graph))
        for memory in (self.successes, self.graphs):
            if len(memory) > MAX_SUCCESSES:
                for key in sorted(memory)[:len(memory) - MAX_SUCCESSES]:
                    del memory[key]  # type: ignore[attr-defined]  # either memory, keyed alike

    def inherit(self, child_hash: str, parent_hashes: Sequence[str]) -> None:
        """A crossover child answers for its parents' failures (mutation comes after crossover)."""
        failed = tuple(sorted({a for h in parent_hashes for a in self.failures.get(h, ())}))
        if failed:
            self.failures[child_hash] = failed
            while len(self.failures) > MAX_FAILURES:
                self.failures.pop(next(iter(self.failures)))

    def can_propose(self, genome_hash: str) -> bool:
        return bool(self.failures.get(genome_hash))

    def propose(self, genome_hash: str, pick: float, graph: Graph = None) -> Proposal | None:
        """A proposal for one of the genome's failed tasks (`pick` in [0, 1) chooses which),
        or None when it failed nothing the reflector knows of. `graph`: the genome's own."""
        proposals = self.propose_for(genome_hash, pick, graph, 1)
        return proposals[0] if proposals else None

    def propose_for(self, genome_hash: str, pick: float, graph: Graph = None, n: int = 1) -> list[Proposal]:
        """Proposals for up to n of the genome's failed tasks, from the one `pick` chooses on."""
        failed = self.failures.get(genome_hash, ())
        first = min(int(pick * len(failed)), len(failed) - 1) if failed else 0
        return [self._answer_failure(genome_hash, failed[(first + i) % len(failed)], graph)
                for i in range(min(n, len(failed)))]

    def _answer_failure(self, genome_hash: str, target: Attempt, graph: Graph) -> Proposal:
        nearest = self._nearest(target)
        if self.backend == "retrieval":
            proposal = self._retrieval(genome_hash, target, nearest)
            if proposal.row is None:
                return self._graph_of_a_passer(proposal, target, graph) or proposal
            return proposal
        return self._ask_model(genome_hash, target, nearest)

    # --- backends ---------------------------------------------------------------------------
    def _nearest(self, target: Attempt) -> list[tuple[Attempt, str]]:
        """Passed tasks other than this one and library rows, nearest instruction first (ties by
        content)."""
        words = set(_WORD.findall(target.instruction.lower()))
        scored = []
        for (instruction, template), a in [*self.successes.items(), *self.examples.items()]:
            if a.task_id == target.task_id:
                continue
            other = set(_WORD.findall(instruction.lower()))
            jaccard = len(words & other) / len(words | other) if words | other else 0.0
            scored.append((-jaccard, instruction, template, a))
        return [(a, template) for _, _, template, a in sorted(scored, key=lambda s: s[:3])]

    def _retrieval(self, parent: str, target: Attempt, nearest: list[tuple[Attempt, str]]) -> Proposal:
        start = time.perf_counter()
        prompt = f"failed: {target.instruction} | typed: {' ; '.join(target.lines) or '(nothing)'}"
        slots = extract(target.instruction)
        for a, template in nearest:
            line = fill(template, slots)
            if line is not None and line.strip() and line.strip() not in target.lines:
                row = ExperienceEntry(target.instruction, f"reflected from {a.task_id}", template)
                return Proposal(parent, target.task_id, "retrieval", prompt, template,
                                time.perf_counter() - start, 0, row, f"row from passed task {a.task_id}")
        return Proposal(parent, target.task_id, "retrieval", prompt, "", time.perf_counter() - start, 0, None,
                        "refused: no passed task whose command fits this instruction")

    def _graph_of_a_passer(self, refused: Proposal, target: Attempt, graph: Graph) -> Proposal | None:
        """A graph edit: the graph under which the nearest passed task was passed, where it is
        not the parent's (None when every such task was passed under the parent's graph)."""
        words = set(_WORD.findall(target.instruction.lower()))
        mine = _graph_key(graph)
        scored = []
        for (instruction, key), (task_id, nodes) in self.graphs.items():
            if key == mine:
                continue
            other = set(_WORD.findall(instruction.lower()))
            jaccard = len(words & other) / len(words | other) if words | other else 0.0
            scored.append((-jaccard, instruction, key, task_id, nodes))
        if not scored:
            return None
        _, _, key, task_id, nodes = min(scored, key=lambda s: s[:3])
        return Proposal(refused.parent, target.task_id, "retrieval", refused.prompt, key, refused.seconds, 0, None,
                        f"graph from passed task {task_id}", graph=nodes, edit=True)

    def _ask_model(self, parent: str, target: Attempt, nearest: list[tuple[Attempt, str]]) -> Proposal:
        """The run's model (`openai` endpoint or `accordion` checkpoint) asked for one command line,
        with the nearest passed tasks as examples; its answer a row, or refused with why."""
        from harness_tower.backends import UsageMeter
        from harness_tower.errors import TowerError

        shots = [(a.instruction, a.lines[0]) for a, _ in nearest[:self.shots]]
        query = target.instruction
        start = time.perf_counter()
        prompt = " || ".join(f"{q} => {v}" for q, v in shots) + f" || {query} =>"
        meter = UsageMeter()  # what the model reported spending (a cached answer: nothing)
        try:  # where the call goes is the run's (its experts: section, else this process's environment)
            prompt, answer = self._answer(shots, query, meter)
        except TowerError as exc:
            return Proposal(parent, target.task_id, self.backend, prompt, "", time.perf_counter() - start, 0, None,
                            f"refused: {exc}")
        seconds = time.perf_counter() - start
        used = meter.totals()
        tokens = used["expert_prompt_tokens"] + used["expert_completion_tokens"]
        if answer.strip().startswith("graph:"):
            nodes, why = _graph_answer(answer.strip())
            if why:
                return Proposal(parent, target.task_id, self.backend, prompt, answer[:MAX_ANSWER * 2], seconds,
                                tokens, None, f"refused: {why}")
            return Proposal(parent, target.task_id, self.backend, prompt, answer, seconds, tokens, None,
                            "graph from the model", graph=nodes, edit=True)
        why = _refusal(answer, target)
        if why:
            return Proposal(parent, target.task_id, self.backend, prompt, answer[:MAX_ANSWER * 2], seconds, tokens,
                            None, f"refused: {why}")
        template = generalise(answer.strip(), extract(target.instruction))
        row = ExperienceEntry(target.instruction, f"proposed by {self.backend}", template)
        return Proposal(parent, target.task_id, self.backend, prompt, answer, seconds, tokens, row,
                        "row from the model")

    def _answer(self, shots: list[tuple[str, str]], query: str, meter: Any) -> tuple[str, str]:
        """(the prompt as sent, the answer) from the configured model; TowerError when it cannot
        be asked or its answer is malformed."""
        from harness_tower.backends import openai as oa
        from harness_tower.backends.relay import ExpertEndpoints
        from harness_tower.errors import TowerError

        ep = ExpertEndpoints.from_config(self.experts)
        if self.backend == "accordion":
            from harness_tower.backends.accordion import NO_CHECKPOINT, AccordionBackend

            if not ep.accordion_checkpoint:
                raise TowerError(NO_CHECKPOINT)
            try:
                answer = AccordionBackend(ep.accordion_checkpoint, MODEL_SAMPLING, meter=meter).answer(shots, query)
            except ImportError:  # the accordion extra (torch) is not installed where the driver runs
                raise TowerError("expert backend accordion: torch is not importable in the driver") from None
            return oa.text_prompt(shots, query), answer
        if not ep.openai_base_url:
            raise TowerError("no endpoint configured (experts.openai.base_url in the run config)")
        cfg = oa.Config.for_endpoint(ep.openai_base_url, ep.openai_model, MODEL_SAMPLING,
                                     timeout=float(ep.openai_timeout), retries=ep.openai_retries,
                                     concurrency=ep.openai_concurrency)
        body = oa.request_body(cfg, shots, query)
        return str(body.get("messages") or body.get("prompt")), oa.OpenAIBackend(cfg, meter).answer(shots, query)


def _graph_key(graph: Graph) -> str:
    return "default" if graph is None else json.dumps(list(graph), sort_keys=True, separators=(",", ":"))


def _graph_answer(answer: str) -> tuple[Graph, str | None]:
    """A model's `graph: [nodes...]` answer as nodes, or why it is not one (whether the nodes
    build is the species' check, as for any genome's graph)."""
    text = answer[len("graph:"):].strip()
    if len(text) > MAX_GRAPH_ANSWER:
        return None, f"a graph longer than {MAX_GRAPH_ANSWER} characters"
    try:
        nodes = json.loads(text)
    except json.JSONDecodeError:
        return None, "a graph that is not JSON"
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        return None, "a graph that is not a list of nodes"
    return tuple(nodes), None


def _refusal(answer: str, target: Attempt) -> str | None:
    """Why an answer cannot be a command row (None: it can)."""
    line = answer.strip()
    if not line:
        return "an empty answer"
    if len(line) > MAX_ANSWER:
        return f"longer than {MAX_ANSWER} characters"
    if not line.isprintable() or "\n" in answer.strip("\n"):
        return "not one printable line"
    if line in target.lines:
        return "the command that already failed"
    return None


def attempts_of(tasks: Sequence[Mapping[str, Any]], instruction_of: Any) -> list[Attempt]:
    """Per-task results (`Outcome.tasks` or stored rows) as attempts; `instruction_of(task_id)`
    gives the instruction, or None for a task the suite does not hold."""
    out = []
    for t in tasks:
        instruction = instruction_of(str(t.get("task_id", "")))
        if instruction:
            out.append(Attempt(str(t["task_id"]), instruction, str(t.get("typed") or ""), bool(t.get("passed"))))
    return out
