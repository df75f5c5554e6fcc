from __future__ import annotations

from pathlib import Path

import pytest
import torch

from accordion.errors import AccordionError
from accordion.kernel_db import KernelDB, KernelDBConfig, tensor_digest
from accordion.model import AccordionConfig, MicroAccordion


class Block:
    """A stand-in block that counts its calls and can drift."""

    def __init__(self, value: float = 1.0) -> None:
        self.calls = 0
        self.value = value

    def __call__(self) -> torch.Tensor:
        self.calls += 1
        return torch.full((2, 3), self.value)


def _db(**kw: object) -> KernelDB:
    base: dict[str, object] = {"confidence_threshold": 0.9, "learn_rate": 0.5, "tolerance": 1e-6,
                               "recheck_rate": 0.0, "base_ttl": 100, "max_ttl": 10}
    base.update(kw)
    return KernelDB(KernelDBConfig(**base))  # type: ignore[arg-type]


KEY = KernelDB.key(0, 0, 1, 0, b"k")


def test_digest_is_vectorised_and_sensitive() -> None:
    x = torch.arange(48 * 4).view(4, 48)
    assert tensor_digest(x) == tensor_digest(x.clone())
    y = x.clone()
    y[3, 47] += 1
    assert tensor_digest(y) != tensor_digest(x)
    assert tensor_digest(x.view(48, 4)) != tensor_digest(x)  # shape is part of the digest
    assert tensor_digest(x.int()) != tensor_digest(x)  # and dtype
    assert tensor_digest(x.t()) == tensor_digest(x.t().contiguous())
    assert tensor_digest(torch.ones(3, dtype=torch.bfloat16)) != tensor_digest(torch.ones(3, dtype=torch.float16))
    big = torch.arange(4096)  # beyond RAW_KEY_LIMIT: a 16-byte hash
    assert len(tensor_digest(big)) == 17 and tensor_digest(big) == tensor_digest(big.clone())
    bumped = big.clone()
    bumped[-1] += 1
    assert tensor_digest(bumped) != tensor_digest(big)
    assert tensor_digest(x[:1]).endswith(x[:1].numpy().tobytes())  # small inputs are their own exact key


def test_miss_shadow_bypass_expiry_lifecycle() -> None:
    db, blk = _db(), Block()
    assert torch.equal(db.lookup(KEY, 0, blk), blk())
    s = db.stats()
    assert (s["misses"], s["hits"], blk.calls) == (1, 0, 2)
    # confidence 0 -> 0.5 -> 0.75 -> 0.875 -> 0.9375: four agreeing shadow checks, each recomputed
    for _ in range(4):
        db.lookup(KEY, 1, blk)
    assert db.stats()["shadow_checks"] == 4 and blk.calls == 6
    entry = db.entry(KEY)
    assert entry is not None and entry.confidence >= 0.9
    assert entry.ttl == 10  # no drift observed: the longest TTL
    out = db.lookup(KEY, 2, blk)  # trusted: bypass without computing
    assert blk.calls == 6 and torch.equal(out, torch.ones(2, 3))
    assert db.stats()["bypasses"] == 1
    assert db.lookup(KEY, 3, blk, allow_bypass=False) is not None  # e.g. training: shadow, not bypass
    assert blk.calls == 7
    db.lookup(KEY, 3 + 11, blk)  # older than its TTL: expired, recomputed as a miss
    s = db.stats()
    assert (s["expirations"], s["misses"], blk.calls) == (1, 2, 8)
    assert db.entry(KEY) is not None and db.entry(KEY).confidence == 0.0  # type: ignore[union-attr]


def test_ttl_follows_drift_and_confidence_falls() -> None:
    db, blk = _db(tolerance=1e-2, max_ttl=1000), Block()
    db.lookup(KEY, 0, blk)
    blk.value += 1e-4  # slow drift over 10 steps
    db.lookup(KEY, 10, blk)
    slow = db.entry(KEY)
    assert slow is not None
    slow_ttl = slow.ttl
    blk.value += 1.0  # a jump: disagreement
    db.lookup(KEY, 11, blk)
    fast = db.entry(KEY)
    assert fast is not None and fast.ttl < slow_ttl and fast.confidence < 0.5
    assert db.stats()["mean_divergence"] > 0


def test_false_positive_is_detected_and_counted() -> None:
    db, blk = _db(recheck_rate=1.0), Block()
    for step in range(5):
        db.lookup(KEY, step, blk)
    entry = db.entry(KEY)
    assert entry is not None and entry.confidence >= 0.9
    blk.value = 2.0  # the stored output is now wrong
    out = db.lookup(KEY, 5, blk)  # a sampled bypass is recomputed: the live value wins
    assert torch.equal(out, torch.full((2, 3), 2.0))
    s = db.stats()
    assert (s["rechecks"], s["false_positives"], s["bypasses"]) == (1, 1, 0)
    assert entry.confidence == 0.0 and s["bypass_divergence"] == pytest.approx(1.0)


def test_lru_eviction_by_count_and_bytes() -> None:
    db = _db(max_entries=2)
    keys = [KernelDB.key(i, 0, 1, 0, b"x") for i in range(3)]
    db.lookup(keys[0], 0, Block())
    db.lookup(keys[1], 0, Block())
    db.lookup(keys[0], 0, Block())  # key 0 is now the most recent
    db.lookup(keys[2], 0, Block())
    assert keys[0] in db and keys[2] in db and keys[1] not in db
    assert db.stats()["evictions"] == 1
    small = _db(max_bytes=50)  # one 2x3 float32 output is 24 bytes
    for k in keys:
        small.lookup(k, 0, Block())
    assert len(small) == 2 and small.stats()["bytes"] == 48


def test_invalidate_older_generations() -> None:
    db = _db()
    db.lookup(KernelDB.key(0, 0, 1, 0, b"a"), 0, Block())
    db.lookup(KernelDB.key(0, 1, 1, 0, b"a"), 0, Block())
    assert db.invalidate(below_generation=1) == 1 and len(db) == 1


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    db, blk = _db(recheck_rate=0.5, seed=3), Block()
    for step in range(6):
        db.lookup(KEY, step, blk)
    db.lookup(KernelDB.key(1, 0, 1, 0, tensor_digest(torch.arange(5))), 0, Block(3.0))
    path = tmp_path / "kdb.pt"
    db.save(path)
    raw = torch.load(path, weights_only=True)  # plain data and tensors only
    assert raw["format"] == "accordion-kernel-db"
    back = KernelDB.load(path)
    assert back.stats() == db.stats() and back.config == db.config
    e0, e1 = db.entry(KEY), back.entry(KEY)
    assert e0 is not None and e1 is not None
    assert (e1.confidence, e1.ttl, e1.stored_at) == (e0.confidence, e0.ttl, e0.stored_at)
    assert torch.equal(e1.output, e0.output)
    # the recheck sampler continues where it was
    calls = []
    for d in (db, back):
        b = Block()
        for step in range(10, 30):
            d.lookup(KEY, step, b)
        calls.append(b.calls)
    assert calls[0] == calls[1]
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(AccordionError, match="unreadable"):
        KernelDB.load(tmp_path / "bad.pt")
    with pytest.raises(AccordionError, match="not found"):
        KernelDB.load(tmp_path / "missing.pt")


def test_model_forward_bypasses_blocks_without_changing_logits() -> None:
    m = MicroAccordion(AccordionConfig(block_size=16, d_model=16, n_blocks=3, n_heads=2)).eval()
    db = KernelDB(KernelDBConfig(recheck_rate=0.0))
    idx = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, _ = m(idx)
        for _ in range(6):
            out, _ = m(idx, kernel_db=db, step=0)
            assert (out - ref).abs().max() == 0
    s = db.stats()
    assert s["misses"] == 3 and s["bypasses"] >= 3 and s["mean_divergence"] == 0.0


def test_training_bypass_only_when_allowed() -> None:
    m = MicroAccordion(AccordionConfig(block_size=8, d_model=8, n_blocks=1, n_heads=1)).train()
    db = KernelDB(KernelDBConfig(recheck_rate=0.0))
    idx = torch.randint(0, 256, (2, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for _ in range(8):
            m(idx, kernel_db=db, step=0)
        assert db.stats()["bypasses"] == 0
        m(idx, kernel_db=db, step=0, allow_train_bypass=True)
    assert db.stats()["bypasses"] == 1
