"""The `accordion` species: MicroAccordion / KernelDB / mutator hyper-parameters (`TrialSpec`).

Genome: `accordion.trial.TrialSpec` — sizes (d_model, blocks, heads, context, batch), the
growth schedule, the mutator's kind and strength, the KernelDB's TTL, confidence threshold,
shadow (recheck) rate, capacity, tolerance and revision span, quantization, learning rate
and steps. Variation: a DEAP toolbox of the pure gene operators in
`populations.operators.hyper` over the species' search space, then a repair (heads divide
the width, growth caps above the sizes), so every child is a valid spec.

Evaluation (on a trainer actor, a GPU where the cluster has one): `accordion.trial.run_trial`
on the generation's corpus. In a run with the `tower` species, that corpus is the typed
sources and pane captures of the tower trajectories of earlier generations plus the
built-in cold-start text, whole trajectories held out (`context`, on the driver); alone, it
is the cold-start text. Objectives: `val_bpb`, `sec_per_mtok`, `param_bytes` (min),
`bypass_rate` (max); constraint: `divergence_ratio` (true mean divergence of bypassed block
outputs over the genome's tolerance) <= 1.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from deap import base  # type: ignore[import-untyped]  # DEAP ships no type information

from accordion.errors import AccordionError
from accordion.trial import GROWTHS, STRATEGIES, TrialSettings, TrialSpec
from populations.base import EvalItem, Outcome, Product, Species, py_random
from populations.errors import SpeciesError
from populations.objectives import Constraint
from populations.operators import hyper
from populations.operators.hyper import Gene

CHECKPOINT_NAME = "model.pt"

# The default search space: small models, a few hundred steps (seconds on one CPU core).
SPACE: dict[str, Gene] = {
    "d_model": Gene("choice", choices=(16, 24, 32, 48, 64)),
    "blocks": Gene("int", 1, 3),
    "heads": Gene("choice", choices=(1, 2, 4)),
    "context": Gene("choice", choices=(32, 48, 64, 96)),
    "batch_size": Gene("choice", choices=(8, 16, 32)),
    "lr": Gene("logfloat", 5e-4, 1e-2),
    "steps": Gene("int", 60, 300),
    "quantize": Gene("bool"),
    "grow": Gene("bool"),
    "grow_cycle": Gene("cycle", choices=GROWTHS),
    "patience": Gene("int", 20, 200),
    "max_blocks": Gene("int", 1, 4),
    "max_heads": Gene("choice", choices=(1, 2, 4, 8)),
    "max_d_model": Gene("choice", choices=(16, 24, 32, 48, 64, 96, 128)),
    "width_delta": Gene("choice", choices=(8, 16)),
    "mutate": Gene("bool"),
    "mutator": Gene("choice", choices=STRATEGIES),
    "mutator_rate": Gene("logfloat", 0.005, 0.1),
    "mutator_strength": Gene("logfloat", 0.01, 0.3),
    "mutate_every": Gene("int", 10, 50),
    "kdb_ttl": Gene("logint", 1, 256),
    "kdb_confidence": Gene("float", 0.5, 0.99),
    "kdb_shadow_rate": Gene("float", 0.0, 0.5),
    "kdb_capacity": Gene("logint", 2, 64),
    "kdb_tolerance": Gene("logfloat", 1e-5, 1e-2),
    "kdb_revision_span": Gene("logint", 1, 64),
}

DIRECTIONS: dict[str, str | None] = {
    "val_bpb": "min", "sec_per_mtok": "min", "param_bytes": "min", "bypass_rate": "max",
    "bypass_divergence": "min", "divergence_ratio": "min", "max_bypass_divergence": "min",
    "false_positives": "min", "train_loss": "min", "train_seconds": "min", "serve_seconds": "min",
    "tokens_per_second": "max", "params": "min",
    "kdb_lookups": None, "heldout": None, "tokens": None, "final_d_model": None, "final_blocks": None,
    "final_heads": None, "growths": None, "mutations": None, "gpu": None,
    "corpus_train_bytes": None, "corpus_heldout_bytes": None, "corpus_trajectories": None,
    "corpus_heldout_trajectories": None, "corpus_documents": None, "corpus_bytes": None,
    "corpus_trajectory_bytes": None, "corpus_from_generation": None, "corpus_dropped": None,
}


@dataclass
class CorpusContext:
    """One generation's corpus, made on the driver and shipped once to every trainer actor."""

    documents: list[Any]  # accordion.corpus.Document
    summary: dict[str, int] = field(default_factory=dict)  # corpus_* metrics of the evaluations
    sources: list[str] = field(default_factory=list)  # trajectory ids, oldest first


class AccordionSpecies(Species[TrialSpec]):
    """Genome: `TrialSpec`; evaluation: one training trial on the generation's corpus."""

    name = "accordion"
    batch_size = 1
    directions = DIRECTIONS
    accelerated = True
    consumes = ("tower",)

    def __init__(self, space: Mapping[str, Any] | None = None, fixed: Mapping[str, Any] | None = None,
                 holdout: float = 0.2, corpus_max_bytes: int = 8 << 20, keep_checkpoints: bool = True,
                 crossover_prob: float = 0.9, cx_indpb: float = 0.5, mut_indpb: float = 0.15,
                 sigma: float = 0.3, trial: Mapping[str, Any] | None = None) -> None:
        if not 0.0 <= holdout < 1.0:
            raise SpeciesError(f"holdout must be in [0, 1), got {holdout!r}", species=self.name)
        if not isinstance(corpus_max_bytes, int) or corpus_max_bytes < 1:
            raise SpeciesError(f"corpus_max_bytes must be a positive integer, got {corpus_max_bytes!r}",
                               species=self.name)
        self.space = _space(space or {})
        self.fixed = _fixed(fixed or {})
        self.holdout = holdout
        self.corpus_max_bytes = corpus_max_bytes
        self.keep_checkpoints = keep_checkpoints
        self.crossover_prob = crossover_prob
        known = {f.name for f in fields(TrialSettings)}
        unknown = sorted(set(trial or {}) - known)
        if unknown:
            raise SpeciesError(f"trial: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                               species=self.name)
        self.settings = TrialSettings(**{"holdout": holdout, **dict(trial or {})})
        self.varied = {n: g for n, g in self.space.items() if n not in self.fixed}
        tb = base.Toolbox()  # DEAP's registry of operators with their parameters; no creator
        tb.register("sample", hyper.sample, self.varied)
        tb.register("mate", hyper.cx_uniform, space=self.varied, indpb=cx_indpb)
        tb.register("mutate", hyper.mut_genes, space=self.varied, indpb=mut_indpb, sigma=sigma)
        self.toolbox = tb
        self._read: dict[str, list[Any]] = {}  # driver side: trajectory path -> its documents
        try:
            self.reference()
        except (AccordionError, TypeError, ValueError) as exc:
            raise SpeciesError(f"fixed: {exc}", species=self.name) from None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_read"] = {}  # a driver-side cache; actors get the corpus with each generation
        return state

    # --- metrics ------------------------------------------------------------------------
    def default_objectives(self) -> list[str]:
        return ["val_bpb", "sec_per_mtok", "param_bytes", "bypass_rate"]

    def default_constraints(self) -> list[Constraint]:
        return [Constraint("divergence_ratio", le=1.0)]

    # --- genome form ------------------------------------------------------------------
    def to_data(self, genome: TrialSpec) -> dict[str, Any]:
        return genome.to_dict()

    def from_data(self, data: Any) -> TrialSpec:
        try:
            return TrialSpec.from_dict(data)
        except (AccordionError, TypeError) as exc:
            raise SpeciesError(str(exc), species=self.name) from None

    def describe(self, genome: TrialSpec) -> str:
        g = genome
        return (f"d{g.d_model} b{g.blocks} h{g.heads} T{g.context} {'q4' if g.quantize else 'fp32'} "
                f"lr{g.lr:.1e} s{g.steps} kdb c{g.kdb_confidence:.2f} r{g.kdb_revision_span}")

    # --- variation ----------------------------------------------------------------------
    def repair(self, genes: Mapping[str, Any]) -> TrialSpec:
        """A valid spec from genes that may break cross-gene rules (and fixed genes pinned)."""
        d = {**genes, **self.fixed}
        for name, gene in self.space.items():
            if name in d and name not in self.fixed:
                d[name] = gene.clip(d[name])
        d["grow_cycle"] = tuple(d.get("grow_cycle", GROWTHS))
        width, heads = int(d.get("d_model", 32)), int(d.get("heads", 1))
        while heads > 1 and width % heads:
            heads -= 1
        d["heads"] = heads
        d["max_blocks"] = max(int(d.get("max_blocks", 1)), int(d.get("blocks", 1)))
        d["max_heads"] = max(int(d.get("max_heads", 1)), heads)
        d["max_d_model"] = max(int(d.get("max_d_model", width)), width)
        return TrialSpec(**d)

    def reference(self) -> TrialSpec:
        """The hand-set defaults (the reference shape), brought into the space."""
        return self.repair(TrialSpec().to_dict())

    def sample(self, n: int, rng: np.random.Generator) -> list[TrialSpec]:
        """The reference first, then random specs from the space, all distinct."""
        r = py_random(rng)
        out: list[TrialSpec] = []
        seen: set[str] = set()
        candidates = [self.reference()]
        attempts = 0
        while len(out) < n and attempts < 50 * max(1, n):
            g = candidates.pop() if candidates else self.repair({**TrialSpec().to_dict(), **self.toolbox.sample(r)})
            attempts += 1
            h = self.hash(g)
            if h not in seen:
                out.append(g)
                seen.add(h)
        return out

    def mate(self, pairs: Sequence[tuple[TrialSpec, TrialSpec]],
             rng: np.random.Generator) -> list[tuple[TrialSpec, TrialSpec]]:
        r = py_random(rng)
        children = []
        for a, b in pairs:
            ca, cb = self.toolbox.mate(a.to_dict(), b.to_dict(), r)
            children.append((self.repair(ca), self.repair(cb)))
        return children

    def mutate(self, genomes: Sequence[TrialSpec], rng: np.random.Generator) -> list[TrialSpec]:
        r = py_random(rng)
        return [self.repair(self.toolbox.mutate(g.to_dict(), r)) for g in genomes]

    # --- the corpus (on the driver) -------------------------------------------------------
    def context(self, generation: int, products: Sequence[Product]) -> CorpusContext:
        """Built-in text plus the trajectories of `products` (newest first up to the byte cap),
        whole trajectories held out by a stable hash of their ids."""
        from accordion.corpus import (
            builtin_documents,
            held_out_groups,
            trajectory_documents,
        )

        mine = sorted((p for p in products if p.species in self.consumes),
                      key=lambda p: (p.generation, p.individual_id))
        builtin = builtin_documents()
        budget = self.corpus_max_bytes - sum(len(d.data) for d in builtin)
        chosen: list[Product] = []
        per: dict[str, list[Any]] = {}
        for p in reversed(mine):  # newest first
            docs = trajectory_documents([(p.individual_id, p.path)], holdout=0.0, cache=self._read)
            size = sum(len(d.data) for d in docs)
            if size > budget:
                continue
            budget -= size
            chosen.append(p)
            per[p.individual_id] = docs
        chosen.reverse()
        held = held_out_groups((p.individual_id for p in chosen), self.holdout)
        documents = list(builtin)
        for p in chosen:
            documents += [_with_heldout(d, p.individual_id in held) for d in per[p.individual_id]]
        traj_bytes = sum(len(d.data) for p in chosen for d in per[p.individual_id])
        summary = {
            "corpus_trajectories": len(chosen),
            "corpus_heldout_trajectories": len(held),
            "corpus_documents": len(documents),
            "corpus_bytes": sum(len(d.data) for d in documents),
            "corpus_trajectory_bytes": traj_bytes,
            "corpus_from_generation": max((p.generation for p in chosen), default=-1),
            "corpus_dropped": len(mine) - len(chosen),
        }
        return CorpusContext(documents, summary, [p.individual_id for p in chosen])

    # --- evaluation (on a trainer actor) --------------------------------------------------
    def evaluate(self, items: Sequence[EvalItem], *, workdir: Path, timeout: float,
                 run_id: str) -> list[Outcome]:
        from accordion.trial import run_trial

        outcomes = []
        for it in items:
            start = time.monotonic()
            ctx = it.context if isinstance(it.context, CorpusContext) else self.context(0, [])
            try:
                spec = it.genome if isinstance(it.genome, TrialSpec) else self.from_data(it.genome)
                res = run_trial(spec, ctx.documents, seed=it.seed, settings=self.settings,
                                keep_checkpoint=self.keep_checkpoints, timeout=timeout,
                                meta={"run_id": run_id, "individual_id": it.individual_id,
                                      "sources": ["builtin", *ctx.sources]})
                metrics: dict[str, float | int | None] = {**res.metrics, **ctx.summary}
                artifacts = {CHECKPOINT_NAME: res.checkpoint} if res.checkpoint is not None else None
                outcomes.append(Outcome(it.individual_id, "ok", metrics, wall_seconds=time.monotonic() - start,
                                        artifacts=artifacts))
            except AccordionError as exc:
                status = "timeout" if "did not finish within" in str(exc) else "failed"
                outcomes.append(Outcome(it.individual_id, status, dict(ctx.summary), str(exc),
                                        wall_seconds=time.monotonic() - start))
            except Exception as exc:  # noqa: BLE001 - the evaluation boundary: record, never raise
                outcomes.append(Outcome(it.individual_id, "failed", dict(ctx.summary),
                                        f"{type(exc).__name__}: {exc}", wall_seconds=time.monotonic() - start))
        return outcomes


def _fixed(fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Genes pinned for the whole run (checked with the reference spec by the caller)."""
    known = {f.name for f in fields(TrialSpec)}
    unknown = sorted(set(fixed) - known)
    if unknown:
        raise SpeciesError(f"fixed: unknown gene(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                           species="accordion")
    return {k: (tuple(v) if k == "grow_cycle" and isinstance(v, list) else v) for k, v in fixed.items()}


def _with_heldout(doc: Any, heldout: bool) -> Any:
    from dataclasses import replace

    return replace(doc, heldout=heldout)


def _space(overrides: Mapping[str, Any]) -> dict[str, Gene]:
    """The default space with some genes narrowed: `[low, high]` for numbers, a list of
    values for choices and cycles."""
    space = dict(SPACE)
    for name, value in overrides.items():
        gene = SPACE.get(name)
        if gene is None:
            raise SpeciesError(f"space: unknown gene {name!r} (known: {', '.join(SPACE)})", species="accordion")
        if not isinstance(value, (list, tuple)) or not value:
            raise SpeciesError(f"space.{name}: give a list ([low, high] or the allowed values)", species="accordion")
        try:
            if gene.kind in ("int", "logint", "float", "logfloat"):
                if len(value) != 2:
                    raise ValueError(f"give [low, high], got {list(value)}")
                space[name] = Gene(gene.kind, value[0], value[1])
            elif gene.kind in ("choice", "cycle"):
                space[name] = Gene(gene.kind, choices=tuple(value))
            else:
                raise ValueError("a true/false gene is pinned with `fixed`, not narrowed")
        except ValueError as exc:
            raise SpeciesError(f"space.{name}: {exc}", species="accordion") from None
    return space
