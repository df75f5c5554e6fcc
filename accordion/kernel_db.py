"""KernelDB: per-block memoization of block outputs, trusted only as far as it has been checked.

An entry's life: a *miss* computes the block and stores the output with confidence 0; later
lookups *shadow-validate* (compute anyway, compare, return the live value), and every
agreement within `tolerance` raises confidence. Above `confidence_threshold` a lookup may
*bypass* the block and return the stored output; a sample of bypasses (`recheck_rate`) is
recomputed, and a disagreement there is a *false positive*: counted, and confidence drops to
zero. An *audit* (`audit=True`, for measuring a setting, never for speed) computes every
bypassed block anyway, returns the stored output all the same, and records the true
divergence of what the bypass returned. Entries *expire* after a TTL that follows the
observed drift (divergence per step of age): slow drift, long life. A size-capped LRU evicts
the rest.

Keys are (block, generation, heads, revision bucket, digest of the input tensor). The digest
is read straight from the tensor's memory with C-level calls, no Python loop over tokens: the
bytes themselves for small inputs (a context of byte tokens), a SHA-256 of them for large ones.
"""
from __future__ import annotations

import ctypes
import hashlib
import math
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from accordion.errors import AccordionError

Key = tuple[int, int, int, int, bytes]  # (block, generation, heads, bucket, digest)

_FORMAT = "accordion-kernel-db"
_COUNTERS = ("lookups", "hits", "misses", "bypasses", "shadow_checks", "rechecks", "false_positives",
             "expirations", "evictions", "invalidations", "audits")


@dataclass(frozen=True)
class KernelDBConfig:
    confidence_threshold: float = 0.9  # bypass only at or above this confidence
    tolerance: float = 1e-4  # largest |live - stored| that counts as agreement
    learn_rate: float = 0.5  # an agreeing check moves confidence this share of the way to 1
    base_ttl: int = 32  # steps a new entry lives before any drift has been seen
    min_ttl: int = 1
    max_ttl: int = 1 << 20
    revision_span: int = 32  # steps per revision bucket (part of the key)
    max_entries: int = 4096
    max_bytes: int = 256 << 20
    recheck_rate: float = 0.05  # share of bypasses recomputed to catch false positives
    seed: int = 0
    audit: bool = False  # compute every bypassed block too, to measure what bypassing costs

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence_threshold <= 1.0:
            raise AccordionError("kernel db: confidence_threshold must be in (0, 1]")
        if self.tolerance < 0 or not 0.0 < self.learn_rate <= 1.0 or not 0.0 <= self.recheck_rate <= 1.0:
            raise AccordionError("kernel db: tolerance >= 0, learn_rate in (0, 1], recheck_rate in [0, 1]")
        if min(self.base_ttl, self.min_ttl, self.revision_span, self.max_entries, self.max_bytes) < 1:
            raise AccordionError("kernel db: TTLs, revision_span and size caps must be >= 1")
        if not self.min_ttl <= self.max_ttl:
            raise AccordionError("kernel db: min_ttl must not exceed max_ttl")


@dataclass
class Entry:
    output: torch.Tensor
    confidence: float
    stored_at: int  # step of the stored output
    ttl: int
    drift: float = -1.0  # EMA of divergence per step of age; < 0: not observed yet
    hits: int = 0
    checks: int = 0

    @property
    def nbytes(self) -> int:
        return self.output.numel() * self.output.element_size()


RAW_KEY_LIMIT = 1024  # inputs up to this many bytes are their own key


@lru_cache(maxsize=256)
def _header(dtype: torch.dtype, shape: torch.Size) -> bytes:
    return f"{dtype}{tuple(shape)}|".encode()


def tensor_digest(x: torch.Tensor) -> bytes:
    """The key bytes of a tensor: dtype, shape and contents, with no per-element Python.

    The contents are read straight from the tensor's memory (`string_at` of its data pointer).
    Up to RAW_KEY_LIMIT bytes they *are* the key (marked `=`): exact, so no collision is
    possible, and the cheapest (the dict's C hash of it is computed once and cached on the
    bytes object). Larger inputs become `#` and 16 bytes of SHA-256, which CPUs with SHA
    extensions hash at about twice BLAKE2b's speed.
    """
    if not (x.is_cpu and x.is_contiguous()):
        x = x.detach().cpu().contiguous()
    head = _header(x.dtype, x.shape)
    n = x.nbytes
    raw = ctypes.string_at(x.data_ptr(), n) if n else b""
    if n <= RAW_KEY_LIMIT:
        return b"=" + head + raw
    h = hashlib.sha256(head)
    h.update(raw)
    return b"#" + h.digest()[:16]


def divergence(live: torch.Tensor, stored: torch.Tensor) -> float:
    """Largest absolute difference; inf when the shapes differ."""
    if live.shape != stored.shape:
        return math.inf
    return float((live.detach().float() - stored.to(live.device).float()).abs().max()) if live.numel() else 0.0


class KernelDB:
    def __init__(self, config: KernelDBConfig | None = None) -> None:
        self.config = config or KernelDBConfig()
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._bytes = 0
        self._rng = random.Random(self.config.seed)
        self._n = dict.fromkeys(_COUNTERS, 0)
        self._div_sum = self._bypass_div_sum = 0.0
        self._div_count = 0
        self._audit_sum = self._audit_max = 0.0

    # -- keys ---------------------------------------------------------------------------
    digest = staticmethod(tensor_digest)

    def bucket(self, step: int) -> int:
        return step // self.config.revision_span

    @staticmethod
    def key(block: int, generation: int, heads: int, bucket: int, digest: bytes) -> Key:
        return (block, generation, heads, bucket, digest)

    def fingerprint(self, block: int, generation: int, heads: int, bucket: int, x: torch.Tensor) -> Key:
        return (block, generation, heads, bucket, tensor_digest(x))

    # -- the lookup -----------------------------------------------------------------------
    def lookup(self, key: Key, step: int, compute: Callable[[], torch.Tensor], *,
               allow_bypass: bool = True) -> torch.Tensor:
        """The block output for `key`: stored (bypass) when trusted and allowed, else `compute()`."""
        n = self._n
        n["lookups"] += 1
        entry = self._entries.get(key)
        if entry is not None and step - entry.stored_at > entry.ttl:
            n["expirations"] += 1
            self._drop(key)
            entry = None
        if entry is None:
            n["misses"] += 1
            live = compute()
            self._store(key, Entry(live.detach(), 0.0, step, self.config.base_ttl))
            return live
        n["hits"] += 1
        entry.hits += 1
        self._entries.move_to_end(key)
        cfg = self.config
        if allow_bypass and entry.confidence >= cfg.confidence_threshold:
            if cfg.recheck_rate <= 0.0 or self._rng.random() >= cfg.recheck_rate:
                n["bypasses"] += 1
                if cfg.audit:
                    self._audit(entry.output, compute)
                return entry.output
            n["rechecks"] += 1  # false-positive detection: recompute a sampled bypass
            live = compute()
            div = self._observe(entry, live, step)
            self._bypass_div_sum += div if math.isfinite(div) else 0.0
            if div > cfg.tolerance:
                n["false_positives"] += 1
                entry.confidence = 0.0
            return live
        n["shadow_checks"] += 1
        live = compute()
        self._observe(entry, live, step)
        return live

    def _audit(self, stored: torch.Tensor, compute: Callable[[], torch.Tensor]) -> None:
        with torch.no_grad():
            div = divergence(compute(), stored)
        self._n["audits"] += 1
        self._audit_sum += div if math.isfinite(div) else 0.0
        self._audit_max = max(self._audit_max, div)

    def _observe(self, entry: Entry, live: torch.Tensor, step: int) -> float:
        """Compare, adapt confidence and TTL to the divergence, and keep the live output."""
        cfg = self.config
        div = divergence(live, entry.output)
        entry.checks += 1
        self._div_count += 1
        self._div_sum += div if math.isfinite(div) else 0.0
        if div <= cfg.tolerance:
            entry.confidence += cfg.learn_rate * (1.0 - entry.confidence)
        else:
            entry.confidence *= 0.25
        rate = div / max(1, step - entry.stored_at)  # divergence per step of age
        entry.drift = rate if entry.drift < 0 else 0.5 * (entry.drift + rate)
        # live as long as the drift takes to eat half the tolerance
        ttl = cfg.max_ttl if entry.drift == 0 else 0.5 * cfg.tolerance / entry.drift
        entry.ttl = int(min(cfg.max_ttl, max(cfg.min_ttl, ttl)))
        self._bytes -= entry.nbytes
        entry.output, entry.stored_at = live.detach(), step
        self._bytes += entry.nbytes
        self._evict()
        return div

    # -- storage --------------------------------------------------------------------------
    def _store(self, key: Key, entry: Entry) -> None:
        self._drop(key)
        self._entries[key] = entry
        self._bytes += entry.nbytes
        self._evict()

    def _drop(self, key: Key) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes

    def _evict(self) -> None:
        cfg = self.config
        while self._entries and (len(self._entries) > cfg.max_entries or self._bytes > cfg.max_bytes):
            _, old = self._entries.popitem(last=False)  # least recently used
            self._bytes -= old.nbytes
            self._n["evictions"] += 1

    def invalidate(self, *, below_generation: int | None = None) -> int:
        """Drop entries of older model generations (all entries when None); returns how many."""
        doomed = [k for k in self._entries if below_generation is None or k[1] < below_generation]
        for k in doomed:
            self._drop(k)
        self._n["invalidations"] += len(doomed)
        return len(doomed)

    def purge_expired(self, step: int) -> int:
        doomed = [k for k, e in self._entries.items() if step - e.stored_at > e.ttl]
        for k in doomed:
            self._drop(k)
        self._n["expirations"] += len(doomed)
        return len(doomed)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[Key]:
        """The stored keys, least recently used first."""
        return list(self._entries)

    def entry(self, key: Key) -> Entry | None:
        """The stored entry, without counting a lookup or touching its recency."""
        return self._entries.get(key)

    # -- statistics -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        n = self._n
        confs = [e.confidence for e in self._entries.values()]
        return {
            **n,
            "entries": len(self._entries),
            "bytes": self._bytes,
            "bypass_rate": n["bypasses"] / n["lookups"] if n["lookups"] else 0.0,
            "mean_divergence": self._div_sum / self._div_count if self._div_count else 0.0,
            "bypass_divergence": self._bypass_div_sum / n["rechecks"] if n["rechecks"] else 0.0,
            "mean_confidence": sum(confs) / len(confs) if confs else 0.0,
            "audit_divergence": self._audit_sum / n["audits"] if n["audits"] else 0.0,
            "audit_max_divergence": self._audit_max,
        }

    # -- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain containers and CPU tensors only (loadable with `torch.load(weights_only=True)`)."""
        version, internal, gauss = self._rng.getstate()
        return {
            "format": _FORMAT,
            "version": 1,
            "config": asdict(self.config),
            "counters": dict(self._n),
            "divergence": [self._div_sum, self._bypass_div_sum, self._div_count],
            "audit": [self._audit_sum, self._audit_max],
            "rng": [version, list(internal), gauss],
            "entries": [
                {"key": list(k), "output": e.output.detach().cpu(), "confidence": e.confidence,
                 "stored_at": e.stored_at, "ttl": e.ttl, "drift": e.drift, "hits": e.hits, "checks": e.checks}
                for k, e in self._entries.items()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> KernelDB:
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise AccordionError("kernel db: not a KernelDB state")
        try:
            known = {f.name for f in fields(KernelDBConfig)}
            db = cls(KernelDBConfig(**{k: v for k, v in state["config"].items() if k in known}))
            db._n.update({k: int(v) for k, v in state["counters"].items() if k in db._n})
            db._div_sum, db._bypass_div_sum, db._div_count = state["divergence"]
            db._audit_sum, db._audit_max = state.get("audit", [0.0, 0.0])
            version, internal, gauss = state["rng"]
            db._rng.setstate((version, tuple(internal), gauss))
            for e in state["entries"]:
                b, g, h, s, d = e["key"]
                db._store((int(b), int(g), int(h), int(s), bytes(d)),
                          Entry(e["output"], float(e["confidence"]), int(e["stored_at"]), int(e["ttl"]),
                                float(e["drift"]), int(e["hits"]), int(e["checks"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise AccordionError(f"kernel db: malformed state ({type(exc).__name__}: {exc})") from exc
        db._n["evictions"] = int(state["counters"].get("evictions", 0))  # loading is not evicting
        return db

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), Path(path))

    @classmethod
    def load(cls, path: str | Path) -> KernelDB:
        from accordion.checkpoint import read_torch_file

        return cls.from_state(read_torch_file(path, "kernel db"))
