"""One trial of a hyper-parameter setting: train a MicroAccordion, then measure it.

`TrialSpec` is everything a trial varies (the accordion species' genome): sizes, growth
schedule, mutator, KernelDB settings, quantization, learning rate and steps. `run_trial`
trains on a document list and reports:

- `val_bpb`: held-out bits per byte after training (fixed windows);
- `sec_per_mtok`: wall seconds of training per million training tokens;
- `param_bytes`: bytes to deploy the trained model at its trained precision — 4-bit codes
  packed two a byte plus scales (fp32 norms and biases) when trained quantized, fp32 otherwise;
- `bypass_rate`, `bypass_divergence`, `divergence_ratio`: a KernelDB with the spec's settings
  serves the same prompts round after round while training goes on, a step every few rounds
  (a model served while it learns: between steps a stored block output is exact, after one
  it is stale unless the revision bucket moved on or a recheck caught it). Every bypass is
  audited, so `bypass_divergence` is the true mean divergence of what bypassing returned,
  and `divergence_ratio` that over the spec's tolerance.

Importing this module is cheap: torch loads in `run_trial`.
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from accordion.errors import AccordionError

GROWTHS = ("heads", "blocks", "width")  # as accordion.train.GROWTHS (kept torch-free here)
STRATEGIES = ("gaussian", "sign_flip", "zero_mask", "luminosity")  # as accordion.mutator


@dataclass(frozen=True)
class TrialSpec:
    # sizes
    d_model: int = 32
    blocks: int = 1
    heads: int = 1
    context: int = 48
    batch_size: int = 16
    # optimisation
    lr: float = 3e-3
    steps: int = 200
    quantize: bool = True
    # growth schedule: on a plateau of `patience` steps, grow by the next kind in the cycle
    grow: bool = True
    grow_cycle: tuple[str, ...] = GROWTHS
    patience: int = 150
    max_blocks: int = 4
    max_heads: int = 8
    max_d_model: int = 128
    width_delta: int = 16
    # LuminosityMutator
    mutate: bool = True
    mutator: str = "luminosity"
    mutator_rate: float = 0.02
    mutator_strength: float = 0.05
    mutate_every: int = 25
    # KernelDB
    kdb_ttl: int = 32
    kdb_confidence: float = 0.9
    kdb_shadow_rate: float = 0.05  # share of bypasses recomputed (false-positive checks)
    kdb_capacity: int = 64
    kdb_tolerance: float = 1e-3  # agreement bound, and the constraint on bypassed outputs
    kdb_revision_span: int = 32  # training steps per revision bucket (part of every key)

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise AccordionError(f"trial spec: {what}")

        for name in ("d_model", "blocks", "heads", "context", "batch_size", "steps", "patience", "max_blocks",
                     "max_heads", "max_d_model", "width_delta", "mutate_every", "kdb_ttl", "kdb_capacity",
                     "kdb_revision_span"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                 f"{name} must be an integer >= 1, got {value!r}")
        for name in ("quantize", "grow", "mutate"):
            need(isinstance(getattr(self, name), bool), f"{name} must be true or false")
        need(self.d_model % self.heads == 0, f"d_model={self.d_model} is not divisible by heads={self.heads}")
        need(self.context >= 8, f"context must be >= 8, got {self.context}")
        need(self.max_blocks >= self.blocks and self.max_heads >= self.heads and self.max_d_model >= self.d_model,
             "max_blocks, max_heads and max_d_model must not be below blocks, heads and d_model")
        need(isinstance(self.grow_cycle, tuple) and len(self.grow_cycle) >= 1
             and len(set(self.grow_cycle)) == len(self.grow_cycle) and all(g in GROWTHS for g in self.grow_cycle),
             f"grow_cycle must list distinct kinds among {', '.join(GROWTHS)}, got {self.grow_cycle!r}")
        need(self.mutator in STRATEGIES, f"mutator must be one of {', '.join(STRATEGIES)}, got {self.mutator!r}")
        for name, low, high in (("lr", 0.0, 1.0), ("mutator_rate", 0.0, 1.0), ("mutator_strength", 0.0, 10.0),
                                ("kdb_confidence", 0.0, 1.0), ("kdb_shadow_rate", 0.0, 1.0),
                                ("kdb_tolerance", 0.0, 10.0)):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                 f"{name} must be a number, got {value!r}")
            need(low <= value <= high, f"{name} must be in [{low:g}, {high:g}], got {value!r}")
        need(self.lr > 0 and self.kdb_confidence > 0 and self.kdb_tolerance > 0,
             "lr, kdb_confidence and kdb_tolerance must be > 0")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grow_cycle"] = list(self.grow_cycle)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSpec:
        if not isinstance(data, Mapping):
            raise AccordionError(f"trial spec: expected an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AccordionError(f"trial spec: unknown field(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(sorted(known))})")
        kw = dict(data)
        if "grow_cycle" in kw:
            if not isinstance(kw["grow_cycle"], (list, tuple)):
                raise AccordionError(f"trial spec: grow_cycle must be a list, got {kw['grow_cycle']!r}")
            kw["grow_cycle"] = tuple(kw["grow_cycle"])
        return cls(**kw)

    def replace(self, **changes: Any) -> TrialSpec:
        return replace(self, **changes)


@dataclass(frozen=True)
class TrialSettings:
    """How a trial is measured (the same for every spec of a run, unlike the spec itself)."""

    holdout: float = 0.2  # tail share of untagged documents (the built-in corpus) held out
    eval_batches: int = 4
    kdb_prompts: int = 4  # prompt batches served through the KernelDB each round
    kdb_prompt_batch: int = 4  # windows per prompt batch
    kdb_rounds: int = 12  # serving rounds
    kdb_train_every: int = 4  # rounds between training steps
    threads: int = 1  # torch CPU threads (a trainer actor holds one CPU)
    device: str = "auto"  # cpu | cuda | auto


@dataclass
class TrialResult:
    metrics: dict[str, float | int | None]
    checkpoint: bytes | None = None  # the trained model (accordion checkpoint), when kept
    history: list[dict[str, Any]] = field(default_factory=list)


def run_trial(spec: TrialSpec, documents: Iterable[Any], *, seed: int = 0,
              settings: TrialSettings = TrialSettings(), keep_checkpoint: bool = False,
              timeout: float | None = None, meta: Mapping[str, Any] | None = None) -> TrialResult:
    """Train `spec` on `documents` (accordion.corpus.Document) and measure it; an
    AccordionError when the corpus is too small or training outlasts `timeout` seconds."""
    import torch

    device = _device(settings.device)
    threads = torch.get_num_threads()
    if device.type == "cpu" and settings.threads > 0:
        torch.set_num_threads(settings.threads)
    try:
        return _trial(spec, documents, seed=seed, settings=settings, device=device,
                      keep_checkpoint=keep_checkpoint, timeout=timeout, meta=meta)
    finally:
        torch.set_num_threads(threads)  # the caller's setting, as it was


def _trial(spec: TrialSpec, documents: Iterable[Any], *, seed: int, settings: TrialSettings, device: Any,
           keep_checkpoint: bool, timeout: float | None, meta: Mapping[str, Any] | None) -> TrialResult:
    import torch

    from accordion.checkpoint import Checkpoint, save_checkpoint
    from accordion.corpus import ByteCorpus
    from accordion.kernel_db import KernelDB, KernelDBConfig
    from accordion.model import AccordionConfig, MicroAccordion
    from accordion.mutator import LuminosityMutator, MutatorConfig
    from accordion.train import TrainConfig, Trainer

    seed = int(seed) % (2**63)
    corpus = ByteCorpus(documents, holdout=settings.holdout, split="tail")
    if corpus.size("train") < spec.context + 1:
        raise AccordionError(f"trial: the corpus has {corpus.size('train')} training bytes, fewer than a window "
                             f"of {spec.context + 1}")
    model = MicroAccordion(AccordionConfig(block_size=spec.context, d_model=spec.d_model, n_blocks=spec.blocks,
                                           n_heads=spec.heads, quantize=spec.quantize),
                           generator=torch.Generator().manual_seed(seed))
    kdb = KernelDB(KernelDBConfig(confidence_threshold=spec.kdb_confidence, tolerance=spec.kdb_tolerance,
                                  base_ttl=spec.kdb_ttl, max_entries=spec.kdb_capacity,
                                  recheck_rate=spec.kdb_shadow_rate, revision_span=spec.kdb_revision_span,
                                  seed=seed % (2**31), audit=True))
    tcfg = TrainConfig(batch_size=spec.batch_size, lr=spec.lr, seed=seed, eval_every=spec.steps + 1,
                       eval_batches=settings.eval_batches, patience=spec.patience, mutate=spec.mutate,
                       mutate_every=spec.mutate_every, grow=spec.grow, grow_cycle=spec.grow_cycle,
                       max_blocks=spec.max_blocks, max_heads=spec.max_heads,
                       max_d_model=spec.max_d_model, width_delta=spec.width_delta)
    mutator = LuminosityMutator(MutatorConfig(strategy=spec.mutator, rate=spec.mutator_rate,
                                              strength=spec.mutator_strength, seed=seed))
    trainer = Trainer(model, corpus, tcfg, kernel_db=kdb, mutator=mutator, device=device,
                      meta={**dict(meta or {}), "spec": spec.to_dict()})

    deadline = None if timeout is None else time.monotonic() + timeout

    def on_step(info: Any) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise AccordionError(f"trial: training did not finish within {timeout:g}s "
                                 f"({info.step} of {spec.steps} steps done)")

    trainer.run(spec.steps, on_step)
    train_seconds, train_tokens = trainer.seconds, trainer.tokens
    if device.type == "cuda":
        torch.cuda.synchronize()
    ev = trainer.evaluate()
    grown = sum(1 for h in trainer.history for e in h["events"] if e.startswith("grow:"))
    mutated = sum(1 for h in trainer.history for e in h["events"] if e.startswith("mutate:"))
    footprint = trainer.model.footprint()
    param_bytes = footprint["quantized_bytes"] if trainer.model.config.quantize else footprint["float32_bytes"]
    mc = trainer.model.config

    # serving while learning: the same prompts each round, a training step every few rounds
    g = torch.Generator().manual_seed(seed + 2)
    split = "heldout" if corpus.size("heldout") > spec.context else "train"
    prompts = [corpus.batch(split, settings.kdb_prompt_batch, trainer.model.config.block_size, g, device)[0]
               for _ in range(settings.kdb_prompts)]  # each (B, T)
    serve_start = time.perf_counter()
    for r in range(settings.kdb_rounds):
        if r and r % settings.kdb_train_every == 0:
            trainer.train_step()
        trainer.model.eval()
        with torch.no_grad():
            for x in prompts:
                trainer.model(x, kernel_db=kdb, step=trainer.step, last_only=True)
    serve_seconds = time.perf_counter() - serve_start
    stats = kdb.stats()
    bypass_div = float(stats["audit_divergence"])

    metrics: dict[str, float | int | None] = {
        "val_bpb": _finite(ev["bpb"]),
        "sec_per_mtok": train_seconds / train_tokens * 1e6 if train_tokens else None,
        "param_bytes": int(param_bytes),
        "bypass_rate": float(stats["bypass_rate"]),
        "bypass_divergence": bypass_div,
        "divergence_ratio": bypass_div / spec.kdb_tolerance,
        "max_bypass_divergence": float(stats["audit_max_divergence"]),
        "false_positives": int(stats["false_positives"]),
        "kdb_lookups": int(stats["lookups"]),
        "train_loss": _finite(trainer.ema),
        "heldout": float(ev["split_heldout"]),
        "tokens": int(train_tokens),
        "train_seconds": float(train_seconds),
        "serve_seconds": float(serve_seconds),
        "tokens_per_second": train_tokens / train_seconds if train_seconds else None,
        "params": int(footprint["params"]),
        "final_d_model": mc.d_model, "final_blocks": mc.n_blocks, "final_heads": mc.n_heads,
        "growths": grown, "mutations": mutated,
        "gpu": float(device.type == "cuda"),
        "corpus_train_bytes": corpus.size("train"), "corpus_heldout_bytes": corpus.size("heldout"),
    }
    checkpoint = None
    if keep_checkpoint:
        kdb.invalidate()  # settings and statistics travel, stored block outputs do not
        ck = Checkpoint(trainer.model, kdb, trainer.mutator,
                        {**trainer.meta, "step": trainer.step, "tokens": trainer.tokens,
                         "corpus": corpus.describe(), "torch": str(torch.__version__),
                         "metrics": {k: v for k, v in metrics.items() if v is not None}})
        fd, tmp = tempfile.mkstemp(prefix="trial-", suffix=".pt")
        os.close(fd)
        try:
            checkpoint = save_checkpoint(tmp, ck).read_bytes()
        finally:
            Path(tmp).unlink(missing_ok=True)
    return TrialResult(metrics, checkpoint, list(trainer.history))


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AccordionError(f"trial: device {name} asked for, but no CUDA device is available")
    return torch.device(name)


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)
