"""Function-preserving growth of a MicroAccordion: blocks, heads and width.

Each function returns a new model whose logits equal the old model's (up to float rounding,
with or without quantization) and whose config has `generation` one higher. The new weights
are not all zero: everything that *reads* a new quantity starts random so that gradients
differ between new units, and everything that *writes* a new quantity into the function
starts at zero. Why each growth is exact:

- blocks: a new block's `c_proj` and `fc2` are zero, so it adds 0 to the residual stream.
- heads: a new head has fresh q/k/v rows and zero columns in `c_proj`; a row's quantization
  scale is its absolute maximum, which zero columns do not change.
- width: new residual channels start at zero everywhere (zero embedding columns, zero rows
  in every writer), RMSNorm divides by a fixed reference width so the old channels
  normalise as before, and the new input columns of old rows (which only ever multiply
  those zeros) are bounded by half the row's absolute maximum so its scale stays put.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from accordion.errors import AccordionError
from accordion.model import AccordionConfig, MicroAccordion, init_block

_Place = Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]


def _rebuild(model: MicroAccordion, cfg: AccordionConfig, generator: torch.Generator, place: _Place) -> MicroAccordion:
    """A fresh model for `cfg` whose existing tensors are `place(name, old, fresh)`."""
    device = model.lm_head.weight.device
    new = MicroAccordion(cfg, generator=generator)
    old_sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    new_sd = new.state_dict()
    with torch.no_grad():
        for name, fresh in new_sd.items():
            if name in old_sd:
                new_sd[name] = place(name, old_sd[name], fresh)
    new.load_state_dict(new_sd)
    new.train(model.training)
    return new.to(device)


def _lead(t: torch.Tensor) -> tuple[slice, ...]:
    return tuple(slice(0, s) for s in t.shape)


def _gen(generator: torch.Generator | None, cfg: AccordionConfig) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(1000 + cfg.generation)


def grow_blocks(model: MicroAccordion, k: int = 1, *, generator: torch.Generator | None = None) -> MicroAccordion:
    """Append `k` blocks that start as the identity."""
    if k < 1:
        raise AccordionError(f"grow: blocks must be >= 1, got {k}")
    old = model.config
    cfg = replace(old, n_blocks=old.n_blocks + k, generation=old.generation + 1)
    g = _gen(generator, old)
    new = _rebuild(model, cfg, g, lambda name, o, fresh: o)
    for block in list(new.blocks)[old.n_blocks:]:
        init_block(block, cfg, g, identity=True)
    return new


def grow_heads(model: MicroAccordion, k: int = 1, *, generator: torch.Generator | None = None) -> MicroAccordion:
    """Add `k` attention heads (of the same head size) to every block; they start silent."""
    if k < 1:
        raise AccordionError(f"grow: head steps must be >= 1, got {k}")
    old = model.config
    cfg = replace(old, n_heads=old.n_heads + k, generation=old.generation + 1)
    A0, A1 = old.attn_dim, cfg.attn_dim

    def place(name: str, o: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
        if name.endswith("attn.c_attn.weight"):  # (3*A1, C): q | k | v, each keeps its old rows
            out = fresh.clone()
            for j in range(3):
                out[j * A1:j * A1 + A0] = o[j * A0:(j + 1) * A0]
            return out
        if name.endswith("attn.c_proj.weight"):  # (C, A1): new head columns contribute zero
            out = torch.zeros_like(fresh)
            out[:, :A0] = o
            return out
        return o

    return _rebuild(model, cfg, _gen(generator, old), place)


# Tensors that write into the residual stream (or are it): zero outside the old region.
_WRITERS = ("tok_emb.weight", "pos_emb.weight", "attn.c_proj.weight", "ff.fc2.weight", "ff.fc2.bias", "ff.fc1.bias")
# Matrices that read the residual stream: old rows get bounded noise in the new columns.
_READERS = ("attn.c_attn.weight", "ff.fc1.weight", "lm_head.weight")


def grow_width(model: MicroAccordion, delta: int, *, generator: torch.Generator | None = None) -> MicroAccordion:
    """Widen the residual stream by `delta` channels (and the feed-forward by ff_mult * delta)."""
    if delta < 1:
        raise AccordionError(f"grow: width delta must be >= 1, got {delta}")
    old = model.config
    cfg = replace(old, d_model=old.d_model + delta, generation=old.generation + 1)

    def place(name: str, o: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
        if name.endswith(_WRITERS):
            out = torch.zeros_like(fresh)
        elif name.endswith(_READERS):
            out = fresh.clone()
            rows, cols = o.shape
            bound = 0.5 * o.abs().amax(dim=1, keepdim=True)  # (rows, 1): keeps each row's scale
            out[:rows, cols:] = torch.maximum(torch.minimum(out[:rows, cols:], bound), -bound)
        else:  # norm gains: ones in the new channels (they multiply zeros until trained)
            out = fresh.clone()
        out[_lead(o)] = o
        return out

    return _rebuild(model, cfg, _gen(generator, old), place)


def grow(model: MicroAccordion, *, blocks: int = 0, head_steps: int = 0, width_delta: int = 0,
         generator: torch.Generator | None = None) -> MicroAccordion:
    """Width, then heads, then blocks (so new blocks are born at the final size)."""
    if min(blocks, head_steps, width_delta) < 0:
        raise AccordionError("grow: --blocks, --head-steps and --width-delta must be >= 0")
    if width_delta:
        model = grow_width(model, width_delta, generator=generator)
    if head_steps:
        model = grow_heads(model, head_steps, generator=generator)
    if blocks:
        model = grow_blocks(model, blocks, generator=generator)
    return model


@torch.no_grad()
def logit_drift(before: MicroAccordion, after: MicroAccordion, idx: torch.Tensor) -> float:
    """Largest |logit change| between two models on the same bytes (B, T)."""
    modes = before.training, after.training
    before.eval()
    after.eval()
    try:
        a, _ = before(idx)
        b, _ = after(idx.to(after.lm_head.weight.device))
        return float((a.float().cpu() - b.float().cpu()).abs().max())
    finally:
        before.train(modes[0])
        after.train(modes[1])
