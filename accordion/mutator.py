"""LuminosityMutator: weight mutation that brightens as training plateaus.

Strategies touch a random `rate` share of the entries of every weight tensor (norm gains are
skipped: scaling them moves every channel at once):
- gaussian:   add noise with std `strength` times the tensor's RMS;
- sign_flip:  negate the chosen entries;
- zero_mask:  zero the chosen entries;
- luminosity: gaussian whose strength and share rise with the plateau depth p in [0, 1]:
              strength * (1 + plateau_amplifier * p), rate * (1 + p). A mutation at p >= 0.5
              counts as a pulse.
All randomness comes from the mutator's own seeded `torch.Generator`, saved with its state.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from accordion.errors import AccordionError
from accordion.model import RMSNorm

STRATEGIES = ("gaussian", "sign_flip", "zero_mask", "luminosity")


@dataclass(frozen=True)
class MutatorConfig:
    strategy: str = "luminosity"
    rate: float = 0.02  # share of entries touched per tensor
    strength: float = 0.05  # gaussian std relative to the tensor's RMS
    plateau_amplifier: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise AccordionError(f"mutator: strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if not 0.0 <= self.rate <= 1.0 or self.strength < 0 or self.plateau_amplifier < 0:
            raise AccordionError("mutator: rate in [0, 1], strength and plateau_amplifier >= 0")


@dataclass(frozen=True)
class MutationReport:
    strategy: str
    strength: float
    rate: float
    plateau: float
    entries: int  # entries changed
    tensors: int  # tensors touched


class LuminosityMutator:
    def __init__(self, config: MutatorConfig | None = None) -> None:
        self.config = config or MutatorConfig()
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.stats = {"mutations": 0, "entries": 0, "pulses": 0}

    def schedule(self, plateau: float) -> tuple[str, float, float]:
        """(strategy, strength, rate) at plateau depth `plateau` (clamped to [0, 1])."""
        cfg = self.config
        p = min(1.0, max(0.0, plateau))
        if cfg.strategy == "luminosity":
            return "gaussian", cfg.strength * (1.0 + cfg.plateau_amplifier * p), min(1.0, cfg.rate * (1.0 + p))
        return cfg.strategy, cfg.strength, cfg.rate

    @torch.no_grad()
    def mutate(self, model: nn.Module, plateau: float = 0.0) -> MutationReport:
        kind, strength, rate = self.schedule(plateau)
        g = self.generator
        entries = tensors = 0
        for module in model.modules():
            if isinstance(module, RMSNorm):
                continue
            for p in module.parameters(recurse=False):
                if not p.is_floating_point() or p.numel() == 0:
                    continue
                mask = (torch.rand(p.shape, generator=g) < rate).to(p.device)
                hit = int(mask.sum())
                if hit == 0:
                    continue
                if kind == "gaussian":
                    rms = p.detach().float().pow(2).mean().sqrt().clamp_min(1e-8)
                    noise = torch.randn(p.shape, generator=g).to(p.device, p.dtype) * (strength * rms)
                    p.add_(noise * mask)
                elif kind == "sign_flip":
                    p.copy_(torch.where(mask, -p, p))
                else:  # zero_mask
                    p.masked_fill_(mask, 0.0)
                entries += hit
                tensors += 1
        self.stats["mutations"] += 1
        self.stats["entries"] += entries
        if self.config.strategy == "luminosity" and plateau >= 0.5:
            self.stats["pulses"] += 1
        return MutationReport(kind, strength, rate, min(1.0, max(0.0, plateau)), entries, tensors)

    # -- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "generator": self.generator.get_state(), "stats": dict(self.stats)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LuminosityMutator:
        try:
            known = {f.name for f in fields(MutatorConfig)}
            mut = cls(MutatorConfig(**{k: v for k, v in state["config"].items() if k in known}))
            mut.generator.set_state(state["generator"])
            mut.stats.update({k: int(v) for k, v in state["stats"].items()})
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise AccordionError(f"mutator: malformed state ({type(exc).__name__}: {exc})") from exc
        return mut
