"""Checkpoints: one `torch.save` dict holding model config and weights, KernelDB, mutator, metadata.

Only plain containers and tensors go in, so loading uses `torch.load(weights_only=True)`: a
checkpoint from elsewhere cannot run code. Writes go to a temporary file and are renamed.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from accordion.errors import AccordionError
from accordion.kernel_db import KernelDB
from accordion.model import AccordionConfig, MicroAccordion
from accordion.mutator import LuminosityMutator

FORMAT = "accordion-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    model: MicroAccordion
    kernel_db: KernelDB | None = None
    mutator: LuminosityMutator | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] | None = None  # trainer state for resuming (see train.Trainer)


def read_torch_file(path: str | Path, what: str) -> Any:
    """`torch.load` with weights_only, every failure turned into one AccordionError line."""
    p = Path(path)
    if not p.is_file():
        raise AccordionError(f"{what} not found: {p}", path=str(p))
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise AccordionError(f"{what} unreadable: {p} (not a torch file of tensors and plain data)",
                             path=str(p)) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        reason = str(exc).strip().split(". ")[0][:160] if str(exc).strip() else type(exc).__name__
        raise AccordionError(f"{what} unreadable: {p} ({reason})", path=str(p)) from exc


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    p = Path(path)
    state = {
        "format": FORMAT,
        "version": VERSION,
        "config": ckpt.model.config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in ckpt.model.state_dict().items()},
        "kernel_db": ckpt.kernel_db.state_dict() if ckpt.kernel_db is not None else None,
        "mutator": ckpt.mutator.state_dict() if ckpt.mutator is not None else None,
        "meta": dict(ckpt.meta),
        "trainer": ckpt.trainer,
    }
    if p.parent and not p.parent.exists():
        raise AccordionError(f"checkpoint directory does not exist: {p.parent}", path=str(p))
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise AccordionError(f"cannot write checkpoint {p}: {exc.strerror or exc}", path=str(p)) from exc
    return p


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    state = read_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise AccordionError(f"not an accordion checkpoint: {path}", path=str(path))
    if state.get("version") != VERSION:
        raise AccordionError(f"checkpoint {path} has version {state.get('version')}; this build reads {VERSION}",
                             path=str(path))
    try:
        cfg = AccordionConfig.from_dict(state["config"])
        model = MicroAccordion(cfg)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise AccordionError(f"checkpoint {path} is corrupt: {reason}", path=str(path)) from exc
    kdb = KernelDB.from_state(state["kernel_db"]) if state.get("kernel_db") is not None else None
    mut = LuminosityMutator.from_state(state["mutator"]) if state.get("mutator") is not None else None
    return Checkpoint(model.to(device), kdb, mut, dict(state.get("meta") or {}), state.get("trainer"))
