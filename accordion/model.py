"""MicroAccordion: a byte-level causal transformer with 4-bit fake quantization and a tanh LUT.

Everything that growth (`grow.py`) must keep exact is decided here:
- attention has its own inner width `n_heads * head_dim`, independent of `d_model`, so a new
  head is new rows in `c_attn` plus zero columns in `c_proj`;
- RMSNorm divides the sum of squares by a fixed reference width (`norm_dim`), so zero-padded
  residual channels leave every normalised value unchanged;
- weights are quantized per output channel (row), with the scale set by the row's absolute
  maximum, so appending columns no larger than that maximum leaves every old code unchanged.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from accordion.errors import AccordionError

if TYPE_CHECKING:
    from accordion.kernel_db import KernelDB

VOCAB_SIZE = 256  # bytes


@dataclass(frozen=True)
class AccordionConfig:
    block_size: int = 48  # context T, in bytes
    d_model: int = 32  # residual width C
    n_blocks: int = 1
    n_heads: int = 1
    head_dim: int = 0  # hs; 0 means d_model // n_heads (made explicit by `resolved`)
    ff_mult: int = 2  # d_ff = ff_mult * d_model
    norm_dim: int = 0  # RMSNorm reference width; 0 means d_model; fixed under width growth
    quantize: bool = True
    bits: int = 4
    lut_size: int = 1024
    lut_range: float = 6.0
    vocab_size: int = VOCAB_SIZE
    generation: int = 0  # growth events so far; part of every KernelDB key

    def __post_init__(self) -> None:
        for name in ("block_size", "d_model", "n_blocks", "n_heads", "ff_mult", "vocab_size"):
            if int(getattr(self, name)) < 1:
                raise AccordionError(f"config: {name} must be >= 1, got {getattr(self, name)}")
        if self.head_dim == 0 and self.d_model % self.n_heads:
            raise AccordionError(f"config: d_model={self.d_model} is not divisible by n_heads={self.n_heads}"
                                 " (or give head_dim)")
        if self.head_dim < 0 or self.norm_dim < 0 or self.generation < 0:
            raise AccordionError("config: head_dim, norm_dim and generation must be >= 0")
        if not 2 <= self.bits <= 8:
            raise AccordionError(f"config: bits must be in 2..8, got {self.bits}")
        if self.lut_size < 2 or self.lut_range <= 0:
            raise AccordionError("config: lut_size must be >= 2 and lut_range > 0")

    @property
    def hs(self) -> int:
        return self.head_dim or self.d_model // self.n_heads

    @property
    def attn_dim(self) -> int:
        return self.n_heads * self.hs

    @property
    def d_ff(self) -> int:
        return self.ff_mult * self.d_model

    @property
    def ref_dim(self) -> int:
        return self.norm_dim or self.d_model

    def resolved(self) -> AccordionConfig:
        """The same model with every derived size written out (what growth starts from)."""
        return replace(self, head_dim=self.hs, norm_dim=self.ref_dim)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccordionConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AccordionError(f"config: unknown field(s) {', '.join(unknown)}")
        return cls(**data)


# ---- 4-bit fake quantization, straight-through -------------------------------------------

def quant_scale(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel step: the row's absolute maximum over the largest code."""
    qmax = 2 ** (bits - 1) - 1  # 7 for 4 bits: codes -7..7
    amax = w.detach().abs().amax(dim=tuple(range(1, w.ndim)), keepdim=True)  # (out, 1)
    return amax.clamp_min(1e-12) / qmax


def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Round `w` to its per-row grid in the forward pass; identity gradient in the backward."""
    qmax = 2 ** (bits - 1) - 1
    scale = quant_scale(w, bits)
    q = torch.round(w / scale).clamp_(-qmax, qmax)
    return w + (q * scale - w).detach()


class _QuantWeight(nn.Module):
    """Owns `weight` and hands out its fake-quantized view.

    Without autograd the view is cached and rebuilt when the weight changes (an optimizer
    step or a mutation bumps the tensor's version), so inference does not re-quantize.
    """

    def __init__(self, shape: tuple[int, ...], quantize: bool, bits: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(shape))
        self.quantize = quantize
        self.bits = bits
        self._stamp: tuple[Any, ...] | None = None
        self._cached: torch.Tensor | None = None

    def qweight(self) -> torch.Tensor:
        w = self.weight
        if not self.quantize:
            return w
        if torch.is_grad_enabled():
            return fake_quant(w, self.bits)
        stamp = (w._version, w.data_ptr(), tuple(w.shape), w.device, self.bits)
        if stamp != self._stamp or self._cached is None:
            self._cached = fake_quant(w.detach(), self.bits)
            self._stamp = stamp
        return self._cached


class QuantLinear(_QuantWeight):
    def __init__(self, in_features: int, out_features: int, *, bias: bool, quantize: bool, bits: int) -> None:
        super().__init__((out_features, in_features), quantize, bits)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None  # biases stay fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.qweight(), self.bias)


class QuantEmbedding(_QuantWeight):
    def __init__(self, num: int, dim: int, *, quantize: bool, bits: int) -> None:
        super().__init__((num, dim), quantize, bits)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.qweight())


# ---- tanh lookup table -----------------------------------------------------------------

class _LUTTanhFn(torch.autograd.Function):
    """Linear interpolation in a tanh table; the backward uses the slope of the segment hit."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, table: torch.Tensor, slope: torch.Tensor,
                lo: float, inv_step: float) -> torch.Tensor:
        pos = (x.clamp(lo, -lo) - lo) * inv_step  # in [0, N-1]
        i0 = pos.floor().clamp_(max=table.numel() - 2)
        frac = pos - i0
        i0l = i0.long()
        s = torch.take(slope, i0l)  # per element: table[i0 + 1] - table[i0]
        ctx.save_for_backward(s)
        ctx.inv_step = inv_step
        return torch.take(table, i0l) + s * frac

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (s,) = ctx.saved_tensors
        # outside the table the edge segment's slope applies: tanh' is ~1e-5 there anyway
        return grad * s * ctx.inv_step, None, None, None, None


class TanhLUT(nn.Module):
    def __init__(self, size: int, half_range: float) -> None:
        super().__init__()
        table = torch.tanh(torch.linspace(-half_range, half_range, size, dtype=torch.float64))
        self.register_buffer("table", table.float(), persistent=False)
        self.register_buffer("slope", torch.cat([table[1:] - table[:-1], table[-1:] * 0]).float(),
                             persistent=False)
        self.lo = -float(half_range)
        self.inv_step = (size - 1) / (2.0 * half_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LUTTanhFn.apply(x, self.table.to(x.dtype), self.slope.to(x.dtype), self.lo, self.inv_step)


# ---- the transformer --------------------------------------------------------------------

class RMSNorm(nn.Module):
    """x / sqrt(sum(x^2) / ref_dim + eps) * g, with ref_dim fixed when the width grows."""

    def __init__(self, dim: int, ref_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.ref_dim = ref_dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ms = x.pow(2).sum(-1, keepdim=True) / self.ref_dim  # (B, T, 1)
        return x * torch.rsqrt(ms + self.eps) * self.weight


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: AccordionConfig) -> None:
        super().__init__()
        self.n_heads, self.hs = cfg.n_heads, cfg.hs
        self.c_attn = QuantLinear(cfg.d_model, 3 * cfg.attn_dim, bias=False, quantize=cfg.quantize, bits=cfg.bits)
        self.c_proj = QuantLinear(cfg.attn_dim, cfg.d_model, bias=False, quantize=cfg.quantize, bits=cfg.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        nh, hs = self.n_heads, self.hs
        q, k, v = self.c_attn(x).split(nh * hs, dim=2)  # 3 x (B, T, nh*hs)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, nh * hs)  # (B, T, nh*hs)
        return self.c_proj(y)  # (B, T, C)


class FeedForward(nn.Module):
    def __init__(self, cfg: AccordionConfig) -> None:
        super().__init__()
        self.fc1 = QuantLinear(cfg.d_model, cfg.d_ff, bias=True, quantize=cfg.quantize, bits=cfg.bits)
        self.act = TanhLUT(cfg.lut_size, cfg.lut_range)
        self.fc2 = QuantLinear(cfg.d_ff, cfg.d_model, bias=True, quantize=cfg.quantize, bits=cfg.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (B, T, C) -> (B, T, d_ff) -> (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg: AccordionConfig) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.d_model, cfg.ref_dim)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = RMSNorm(cfg.d_model, cfg.ref_dim)
        self.ff = FeedForward(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ff(self.norm2(x))


def _normal_(t: torch.Tensor, std: float, generator: torch.Generator) -> None:
    t.copy_(torch.randn(t.shape, generator=generator) * std)


def init_block(block: nn.Module, cfg: AccordionConfig, generator: torch.Generator, *, identity: bool = False) -> None:
    """Fresh weights for one block; `identity` zeroes both writes into the residual stream."""
    if not isinstance(block, Block):
        raise AccordionError(f"init_block: expected a Block, got {type(block).__name__}")
    out_std = 0.0 if identity else 1.0 / math.sqrt(2 * cfg.n_blocks)
    with torch.no_grad():
        _normal_(block.attn.c_attn.weight, cfg.d_model ** -0.5, generator)
        _normal_(block.attn.c_proj.weight, out_std * cfg.attn_dim ** -0.5, generator)
        _normal_(block.ff.fc1.weight, cfg.d_model ** -0.5, generator)
        _normal_(block.ff.fc2.weight, out_std * cfg.d_ff ** -0.5, generator)
        for b in (block.ff.fc1.bias, block.ff.fc2.bias):
            if b is not None:
                b.zero_()


class MicroAccordion(nn.Module):
    def __init__(self, config: AccordionConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        cfg = config.resolved()
        self.config = cfg
        q, bits = cfg.quantize, cfg.bits
        self.tok_emb = QuantEmbedding(cfg.vocab_size, cfg.d_model, quantize=q, bits=bits)
        self.pos_emb = QuantEmbedding(cfg.block_size, cfg.d_model, quantize=q, bits=bits)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_blocks))
        self.norm_f = RMSNorm(cfg.d_model, cfg.ref_dim)
        self.lm_head = QuantLinear(cfg.d_model, cfg.vocab_size, bias=False, quantize=q, bits=bits)
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        with torch.no_grad():
            _normal_(self.tok_emb.weight, 0.02, g)
            _normal_(self.pos_emb.weight, 0.02, g)
            for block in self.blocks:
                init_block(block, cfg, g)
            _normal_(self.lm_head.weight, cfg.d_model ** -0.5, g)

    # -- forward ------------------------------------------------------------------------
    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                kernel_db: KernelDB | None = None, step: int = 0, allow_train_bypass: bool = False,
                last_only: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V), or (B, 1, V) with `last_only`, and given targets the mean cross-entropy.

        With a KernelDB each block goes through `kernel_db.lookup`: a block's input is a
        function of the bytes `idx` and the weights, so the key is the bytes (hashed once per
        pass) plus (block, generation, heads, revision bucket); drift of the weights within
        a bucket is what shadow validation measures. Bypass in training is opt-in.
        """
        B, T = idx.shape
        if T > self.config.block_size:
            raise AccordionError(f"sequence of {T} bytes exceeds the context of {self.config.block_size}")
        x = self.tok_emb(idx) + self.pos_emb.qweight()[:T]  # (B, T, C)
        if kernel_db is None:
            for block in self.blocks:
                x = block(x)
        else:
            digest = kernel_db.digest(idx)
            bucket = kernel_db.bucket(step)
            allow = (not self.training) or allow_train_bypass
            gen, nh = self.config.generation, self.config.n_heads
            for i, block in enumerate(self.blocks):
                key = kernel_db.key(i, gen, nh, bucket, digest)
                y = kernel_db.lookup(key, step, partial(block, x), allow_bypass=allow)
                x = y if y.device == x.device else y.to(x.device)  # a db loaded elsewhere
        if last_only and targets is None:
            x = x[:, -1:, :]  # (B, 1, C): sampling needs the next byte only
        logits = self.lm_head(self.norm_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))
        return logits, loss

    def generate(self, prompt: bytes, max_new: int, *, temperature: float = 1.0, top_k: int | None = None,
                 seed: int = 0, kernel_db: KernelDB | None = None, step: int = 0) -> bytes:
        """Sample `max_new` bytes after `prompt`; the same seed gives the same bytes."""
        return b"".join(self.stream(prompt, max_new, temperature=temperature, top_k=top_k, seed=seed,
                                    kernel_db=kernel_db, step=step))

    def stream(self, prompt: bytes, max_new: int, *, temperature: float = 1.0, top_k: int | None = None,
               seed: int = 0, kernel_db: KernelDB | None = None, step: int = 0) -> Iterator[bytes]:
        """`generate`, one byte at a time (servers stream it)."""
        if max_new < 0 or temperature < 0:
            raise AccordionError("generate: max_new and temperature must be >= 0")
        was_training = self.training
        self.eval()
        device = self.lm_head.weight.device
        g = torch.Generator(device=device).manual_seed(seed)
        ctx = list(prompt) or [10]  # an empty prompt starts at a newline
        out = torch.tensor([ctx], dtype=torch.long, device=device)  # (1, t)
        try:
            with torch.no_grad():
                for _ in range(max_new):
                    logits, _ = self(out[:, -self.config.block_size:], kernel_db=kernel_db, step=step,
                                     last_only=True)
                    last = logits[:, -1, :].float()  # (1, V)
                    if temperature == 0:
                        nxt = last.argmax(-1, keepdim=True)
                    else:
                        last = last / temperature
                        if top_k is not None and 0 < top_k < last.size(-1):
                            kth = torch.topk(last, top_k).values[:, -1:]
                            last = last.masked_fill(last < kth, float("-inf"))
                        nxt = torch.multinomial(F.softmax(last, dim=-1), 1, generator=g)  # (1, 1)
                    out = torch.cat([out, nxt], dim=1)
                    yield bytes([int(nxt)])
        finally:
            self.train(was_training)

    # -- bookkeeping ----------------------------------------------------------------------
    def set_quantize(self, on: bool) -> None:
        """Switch fake quantization for every weight (the config records it).

        This changes the function without a new generation: invalidate any KernelDB used with it.
        """
        self.config = replace(self.config, quantize=on)
        for m in self.modules():
            if isinstance(m, _QuantWeight):
                m.quantize = on
                m._stamp = None

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def footprint(self) -> dict[str, int]:
        """Deployed size: 4-bit codes packed two a byte plus fp16 scales; norms and biases fp32."""
        qparams = sum(m.weight.numel() for m in self.modules() if isinstance(m, _QuantWeight))
        channels = sum(m.weight.shape[0] for m in self.modules() if isinstance(m, _QuantWeight))
        other = self.num_params() - qparams
        code_bytes = (qparams * self.config.bits + 7) // 8
        return {
            "params": self.num_params(),
            "quantized_params": qparams,
            "code_bytes": code_bytes,
            "scale_bytes": 2 * channels,
            "fp32_bytes": 4 * other,
            "quantized_bytes": code_bytes + 2 * channels + 4 * other,
            "float32_bytes": 4 * self.num_params(),
        }
