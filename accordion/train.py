"""Training: AdamW on random byte windows, with plateau-driven mutation and growth.

The plateau signal is the number of steps since the EMA of the training loss last improved
by `min_delta`, as a depth p = steps / patience. From p = 0.5 the mutator fires every
`mutate_every` steps with strength rising in p; at p = 1 the model grows (the next kind in
`grow_cycle` still under its cap), the optimizer is rebuilt for the new parameters, stale
KernelDB generations are dropped, and the plateau clock restarts.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from accordion.checkpoint import Checkpoint, save_checkpoint
from accordion.corpus import ByteCorpus
from accordion.errors import AccordionError
from accordion.grow import grow_blocks, grow_heads, grow_width
from accordion.kernel_db import KernelDB
from accordion.model import MicroAccordion
from accordion.mutator import LuminosityMutator

GROWTHS = ("heads", "blocks", "width")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 50
    eval_batches: int = 4
    ema: float = 0.95  # smoothing of the training loss the plateau clock watches
    patience: int = 150  # steps without improvement that make a full plateau
    min_delta: float = 1e-3
    mutate: bool = True
    mutate_every: int = 25
    grow: bool = True
    grow_cycle: tuple[str, ...] = GROWTHS
    max_blocks: int = 4
    max_heads: int = 8
    max_d_model: int = 256
    width_delta: int = 16
    use_kernel_db: bool = False  # route training forwards through the KernelDB
    allow_train_bypass: bool = False  # and let trusted entries skip blocks (no gradient through them)

    def __post_init__(self) -> None:
        if min(self.batch_size, self.eval_every, self.eval_batches, self.patience, self.mutate_every) < 1:
            raise AccordionError("train: batch size, eval_every, eval_batches, patience, mutate_every must be >= 1")
        if self.lr <= 0 or self.grad_clip <= 0 or not 0.0 <= self.ema < 1.0:
            raise AccordionError("train: lr and grad_clip must be > 0 and ema in [0, 1)")
        bad = [g for g in self.grow_cycle if g not in GROWTHS]
        if bad:
            raise AccordionError(f"train: unknown growth kind(s) {bad}; use {', '.join(GROWTHS)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        if "grow_cycle" in kw:
            kw["grow_cycle"] = tuple(kw["grow_cycle"])
        return cls(**kw)


@dataclass(frozen=True)
class StepInfo:
    step: int
    loss: float
    ema: float
    plateau: float
    events: tuple[str, ...]  # growth / mutation that happened after this step
    eval: dict[str, float] | None


class Trainer:
    def __init__(self, model: MicroAccordion, corpus: ByteCorpus, config: TrainConfig | None = None, *,
                 kernel_db: KernelDB | None = None, mutator: LuminosityMutator | None = None,
                 device: torch.device | str = "cpu", meta: dict[str, Any] | None = None,
                 state: dict[str, Any] | None = None) -> None:
        self.config = config or TrainConfig()
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.corpus = corpus
        self.kernel_db = kernel_db
        self.mutator = mutator if mutator is not None else LuminosityMutator()
        self.meta = dict(meta or {})
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.step = 0
        self.tokens = 0
        self.ema: float | None = None
        self.best = math.inf
        self.since_best = 0
        self.seconds = 0.0
        self.history: list[dict[str, Any]] = []
        self.opt = self._optimizer()
        if state is not None:
            self._restore(state)

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    @property
    def plateau(self) -> float:
        return min(1.0, self.since_best / self.config.patience)

    # -- one step -------------------------------------------------------------------------
    def train_step(self) -> StepInfo:
        cfg = self.config
        t0 = time.perf_counter()
        self.model.train()
        x, y = self.corpus.batch("train", cfg.batch_size, self.model.config.block_size, self.generator, self.device)
        kdb = self.kernel_db if cfg.use_kernel_db else None
        _, loss = self.model(x, y, kernel_db=kdb, step=self.step, allow_train_bypass=cfg.allow_train_bypass)
        if loss is None:  # pragma: no cover - targets were given
            raise AccordionError("train: model returned no loss")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise AccordionError(f"train: loss became {value} at step {self.step}; lower --lr")
        self.step += 1
        self.tokens += x.numel()
        self.ema = value if self.ema is None else cfg.ema * self.ema + (1 - cfg.ema) * value
        if self.ema < self.best - cfg.min_delta:
            self.best, self.since_best = self.ema, 0
        else:
            self.since_best += 1
        events = self._on_plateau()
        ev = self.evaluate() if self.step % cfg.eval_every == 0 else None
        self.seconds += time.perf_counter() - t0
        if ev is not None or events:
            self.history.append({"step": self.step, "loss": value, "ema": self.ema, "events": list(events),
                                 **({"eval_loss": ev["loss"], "eval_bpb": ev["bpb"]} if ev else {})})
        return StepInfo(self.step, value, self.ema, self.plateau, events, ev)

    def _on_plateau(self) -> tuple[str, ...]:
        cfg = self.config
        p = self.plateau
        if p >= 1.0:
            self.since_best = 0
            self.best = self.ema if self.ema is not None else math.inf
            grown = self.grow_next() if cfg.grow else None
            if grown is not None:
                return (grown,)
        if cfg.mutate and p >= 0.5 and self.since_best % cfg.mutate_every == 0:
            rep = self.mutator.mutate(self.model, plateau=p)
            if self.kernel_db is not None:  # a jump in the weights, not drift: nothing stored holds
                self.kernel_db.invalidate()
            return (f"mutate:{rep.strategy}:{rep.entries}",)
        return ()

    def grow_next(self) -> str | None:
        """Grow by the first kind in the cycle (rotating) still under its cap; None when all are full."""
        cfg = self.config
        mc = self.model.config
        caps = {"heads": mc.n_heads < cfg.max_heads, "blocks": mc.n_blocks < cfg.max_blocks,
                "width": mc.d_model + cfg.width_delta <= cfg.max_d_model}
        cycle = list(cfg.grow_cycle)
        start = mc.generation % len(cycle) if cycle else 0
        for kind in cycle[start:] + cycle[:start]:
            if caps[kind]:
                self.apply_growth(kind)
                return f"grow:{kind}"
        return None

    def apply_growth(self, kind: str, amount: int = 1) -> None:
        g = torch.Generator().manual_seed(self.config.seed * 7919 + self.model.config.generation + 1)
        if kind == "heads":
            self.model = grow_heads(self.model, amount, generator=g)
        elif kind == "blocks":
            self.model = grow_blocks(self.model, amount, generator=g)
        elif kind == "width":
            self.model = grow_width(self.model, amount * self.config.width_delta, generator=g)
        else:
            raise AccordionError(f"train: unknown growth kind {kind!r}")
        self.opt = self._optimizer()  # new parameter tensors: fresh moments
        if self.kernel_db is not None:
            self.kernel_db.invalidate(below_generation=self.model.config.generation)

    # -- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, batches: int | None = None) -> dict[str, float]:
        """Held-out loss on fixed windows (the same every call); bits per byte = nats / ln 2."""
        n = batches or self.config.eval_batches
        split = "heldout" if self.corpus.size("heldout") > self.model.config.block_size else "train"
        g = torch.Generator().manual_seed(self.config.seed + 1)
        self.model.eval()
        total = 0.0
        for _ in range(n):
            x, y = self.corpus.batch(split, self.config.batch_size, self.model.config.block_size, g, self.device)
            _, loss = self.model(x, y)
            total += float(loss) if loss is not None else math.nan
        self.model.train()
        mean = total / n
        return {"loss": mean, "bpb": mean / math.log(2), "split_heldout": float(split == "heldout")}

    def run(self, steps: int, on_step: Callable[[StepInfo], None] | None = None) -> dict[str, Any]:
        if steps < 0:
            raise AccordionError(f"train: steps must be >= 0, got {steps}")
        for _ in range(steps):
            info = self.train_step()
            if on_step is not None:
                on_step(info)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        mc = self.model.config
        return {"step": self.step, "tokens": self.tokens, "seconds": round(self.seconds, 3),
                "tokens_per_second": self.tokens / self.seconds if self.seconds else 0.0,
                "ema_loss": self.ema, "d_model": mc.d_model, "n_blocks": mc.n_blocks, "n_heads": mc.n_heads,
                "generation": mc.generation}

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "step": self.step, "tokens": self.tokens, "ema": self.ema,
                "best": self.best, "since_best": self.since_best, "seconds": self.seconds,
                "generator": self.generator.get_state(), "history": list(self.history),
                "optimizer": self.opt.state_dict()}

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.step, self.tokens = int(state["step"]), int(state["tokens"])
            self.ema = None if state["ema"] is None else float(state["ema"])
            self.best, self.since_best = float(state["best"]), int(state["since_best"])
            self.seconds = float(state.get("seconds", 0.0))
            self.generator.set_state(state["generator"])
            self.history = list(state.get("history", []))
            if state.get("optimizer") is not None:  # absent after a `grow`: fresh moments
                self.opt.load_state_dict(state["optimizer"])
                for group in self.opt.param_groups:  # this run's settings, the saved moments
                    group["lr"], group["weight_decay"] = self.config.lr, self.config.weight_decay
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise AccordionError(f"train: malformed trainer state ({type(exc).__name__}: {exc})") from exc

    def checkpoint(self) -> Checkpoint:
        meta = {**self.meta, "step": self.step, "tokens": self.tokens, "corpus": self.corpus.describe(),
                "torch": str(torch.__version__)}
        return Checkpoint(self.model, self.kernel_db, self.mutator, meta, self.state())

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, self.checkpoint())
