"""Accordion benchmarks: training throughput, KernelDB fingerprint cost, repeated-prompt inference.

Run:  .venv/bin/python benchmarks/bench_accordion.py [--threads 1] [--quick] [--json out.json]

Every comparison is measured in the same run, with the two sides interleaved (A, B, A, B, ...)
and the median taken, so that load from other processes hits both sides alike.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from accordion.corpus import ByteCorpus, builtin_documents  # noqa: E402
from accordion.kernel_db import KernelDB, KernelDBConfig, tensor_digest  # noqa: E402
from accordion.model import AccordionConfig, MicroAccordion, TanhLUT  # noqa: E402
from accordion.train import TrainConfig, Trainer  # noqa: E402

SMALL = AccordionConfig(block_size=48, d_model=32, n_blocks=1, n_heads=1)  # the reference default
LARGE = AccordionConfig(block_size=256, d_model=256, n_blocks=4, n_heads=4)
PROMPT = b"User: what is width growth\nAssistant:"


# -- naive counterparts (what the reference does) --------------------------------------------

def naive_digest(x: torch.Tensor) -> bytes:
    """The reference's fingerprint: tokens to a Python list, JSON, then a hash."""
    blob = json.dumps({"t": x.detach().cpu().tolist()}, separators=(",", ":")).encode()
    return hashlib.blake2b(blob, digest_size=16).digest()


class NaiveDigestDB(KernelDB):
    digest = staticmethod(naive_digest)


def naive_lut_tanh(x: torch.Tensor, table: torch.Tensor, lo: float = -6.0, hi: float = 6.0) -> torch.Tensor:
    """The reference's LUT: plain autograd through clamp, floor, two gathers and a lerp."""
    n = table.numel()
    x = x.clamp(lo, hi)
    pos = (x - lo) / (hi - lo) * (n - 1)
    i0 = pos.floor().long().clamp(0, n - 1)
    i1 = (i0 + 1).clamp(0, n - 1)
    return table[i0] + (table[i1] - table[i0]) * (pos - i0.float())


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    T, hs = q.size(-2), q.size(-1)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, T)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    return att.masked_fill(mask, float("-inf")).softmax(-1) @ v  # (B, nh, T, hs)


# -- timing helpers ----------------------------------------------------------------------------

def per_call(fn: Callable[[], Any], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def interleaved(fns: dict[str, Callable[[], Any]], number: int, rounds: int) -> dict[str, float]:
    """Median seconds per call of each fn; the fns take turns, the order rotating every round."""
    for fn in fns.values():
        fn()
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(per_call(fns[name], number))
    return {name: statistics.median(s) for name, s in samples.items()}


# -- 1. training throughput -------------------------------------------------------------------

def bench_training(cfg: AccordionConfig, steps: int, warmup: int) -> dict[str, float]:
    corpus = ByteCorpus(builtin_documents())
    out: dict[str, float] = {}
    for label, quant in (("4bit", True), ("fp32", False)):
        model = MicroAccordion(cfg.__class__(**{**cfg.to_dict(), "quantize": quant}))
        t = Trainer(model, corpus, TrainConfig(batch_size=16, eval_every=10**9, mutate=False, grow=False))
        t.run(warmup)
        t0 = time.perf_counter()
        t.run(steps)
        dt = time.perf_counter() - t0
        out[f"tokens_per_s_{label}"] = steps * 16 * cfg.block_size / dt
        out[f"s_per_step_{label}"] = dt / steps
    return out


def bench_kernels(rounds: int) -> dict[str, float]:
    """Forward + backward of the LUT and attention at the large shape: ours vs naive."""
    g = torch.Generator().manual_seed(0)
    lut = TanhLUT(1024, 6.0)
    x = torch.randn(16, 256, 512, generator=g, requires_grad=True)

    def ours_lut() -> None:
        lut(x).sum().backward()

    table = torch.tanh(torch.linspace(-6.0, 6.0, 1024))

    def naive_lut() -> None:
        naive_lut_tanh(x, table).sum().backward()

    q, k, v = (torch.randn(16, 4, 256, 64, generator=g, requires_grad=True) for _ in range(3))

    def sdpa() -> None:
        F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

    def manual() -> None:
        naive_attention(q, k, v).sum().backward()

    lut_t = interleaved({"ours": ours_lut, "naive": naive_lut}, 2, rounds)
    att_t = interleaved({"ours": sdpa, "naive": manual}, 2, rounds)
    return {"lut_ms": lut_t["ours"] * 1e3, "lut_naive_ms": lut_t["naive"] * 1e3,
            "attn_ms": att_t["ours"] * 1e3, "attn_naive_ms": att_t["naive"] * 1e3}


# -- 2. fingerprint cost vs the gated block ---------------------------------------------------

def bench_fingerprint(cfg: AccordionConfig, batch: int, rounds: int) -> dict[str, float]:
    model = MicroAccordion(cfg).eval()
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 256, (batch, cfg.block_size), generator=g)  # (B, T)
    x = torch.randn(batch, cfg.block_size, cfg.d_model, generator=g)  # (B, T, C): the block's input
    block = model.blocks[0]
    db = KernelDB()

    def ours() -> None:
        db.key(0, 0, cfg.n_heads, 0, tensor_digest(idx))

    def naive() -> None:
        db.key(0, 0, cfg.n_heads, 0, naive_digest(idx))

    with torch.no_grad():
        block_s = interleaved({"block": lambda: block(x)}, 20 if cfg.d_model < 128 else 3, rounds)["block"]
    fp = interleaved({"ours": ours, "naive": naive}, 2000, rounds)
    return {"block_us": block_s * 1e6, "fingerprint_us": fp["ours"] * 1e6, "naive_fingerprint_us": fp["naive"] * 1e6,
            "fraction": fp["ours"] / block_s, "naive_fraction": fp["naive"] / block_s,
            "fraction_amortized": fp["ours"] / cfg.n_blocks / block_s}


# -- 3. repeated-prompt inference -------------------------------------------------------------

def bench_inference(model: MicroAccordion, new_bytes: int, reps: int, rounds: int) -> dict[str, Any]:
    """The same query again and again: without a KernelDB, with ours, with a naive-digest one."""
    model.eval()
    ref = model.generate(PROMPT, new_bytes, seed=0, temperature=0.8)
    dbs = {"kdb": KernelDB(KernelDBConfig()), "kdb_naive": NaiveDigestDB(KernelDBConfig())}
    warm: dict[str, float] = {}
    for name, db in dbs.items():  # warm-up: miss, then shadow checks until trusted
        t0 = time.perf_counter()
        for _ in range(6):
            if model.generate(PROMPT, new_bytes, seed=0, temperature=0.8, kernel_db=db) != ref:
                raise SystemExit(f"bench: {name} changed the sampled bytes")
        warm[name] = (time.perf_counter() - t0) / 6

    def query(db: KernelDB | None) -> Callable[[], None]:
        def run() -> None:
            for _ in range(reps):
                if model.generate(PROMPT, new_bytes, seed=0, temperature=0.8, kernel_db=db) != ref:
                    raise SystemExit("bench: a KernelDB changed the sampled bytes")
        return run

    t = interleaved({"plain": query(None), "kdb": query(dbs["kdb"]), "kdb_naive": query(dbs["kdb_naive"])}, 1, rounds)
    s = dbs["kdb"].stats()
    return {
        "query_ms": t["plain"] / reps * 1e3,
        "query_kdb_ms": t["kdb"] / reps * 1e3,
        "query_kdb_naive_ms": t["kdb_naive"] / reps * 1e3,
        "speedup": t["plain"] / t["kdb"],
        "speedup_naive_digest": t["plain"] / t["kdb_naive"],
        "warmup_query_kdb_ms": warm["kdb"] * 1e3,
        "bypass_rate": s["bypass_rate"],
        "rechecks": s["rechecks"],
        "false_positives": s["false_positives"],
        "mean_divergence": s["mean_divergence"],
        "bypass_divergence": s["bypass_divergence"],
        "tolerance": dbs["kdb"].config.tolerance,
        "same_bytes": True,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="fewer steps and rounds (a smoke run)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    q = args.quick
    rounds = 3 if q else 7
    t_start = time.perf_counter()
    machine = {"python": platform.python_version(), "torch": str(torch.__version__), "threads": args.threads,
               "cpus": __import__("os").cpu_count(), "cuda": torch.cuda.is_available(),
               "processor": platform.processor() or platform.machine()}
    print(f"machine: {machine}", flush=True)
    res: dict[str, Any] = {"machine": machine}

    res["train_small"] = bench_training(SMALL, 10 if q else 60, 3)
    print("train d32x1 ctx48 b16:", res["train_small"], flush=True)
    res["train_large"] = bench_training(LARGE, 1 if q else 4, 1)
    print("train d256x4 ctx256 b16:", res["train_large"], flush=True)
    res["kernels_large"] = bench_kernels(rounds)
    print("LUT / attention fwd+bwd at the large shape:", res["kernels_large"], flush=True)

    res["fingerprint"] = {}
    for label, cfg, batch in (("small_b1", SMALL, 1), ("small_b16", SMALL, 16),
                              ("large_b1", LARGE, 1), ("large_b16", LARGE, 16)):
        res["fingerprint"][label] = bench_fingerprint(cfg, batch, rounds)
        print(f"fingerprint {label}:", res["fingerprint"][label], flush=True)

    small = MicroAccordion(SMALL, generator=torch.Generator().manual_seed(0))
    Trainer(small, ByteCorpus(builtin_documents()), TrainConfig(eval_every=10**9, mutate=False, grow=False)).run(
        20 if q else 150)
    res["inference_small"] = bench_inference(small, 32, 3 if q else 10, rounds)
    print("repeated prompt d32x1:", res["inference_small"], flush=True)
    large = MicroAccordion(LARGE, generator=torch.Generator().manual_seed(0))
    res["inference_large"] = bench_inference(large, 16, 1 if q else 2, 3 if q else 7)
    print("repeated prompt d256x4:", res["inference_large"], flush=True)

    res["wall_s"] = time.perf_counter() - t_start
    print(f"total {res['wall_s']:.1f}s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
