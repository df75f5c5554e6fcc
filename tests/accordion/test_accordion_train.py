from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from accordion.checkpoint import load_checkpoint
from accordion.corpus import ByteCorpus, Document, builtin_documents, documents_from, git_documents
from accordion.errors import AccordionError
from accordion.kernel_db import KernelDB
from accordion.model import AccordionConfig, MicroAccordion, RMSNorm
from accordion.mutator import LuminosityMutator, MutatorConfig
from accordion.train import TrainConfig, Trainer


def _trainer(**train: object) -> Trainer:
    cfg = AccordionConfig(block_size=32, d_model=32, n_blocks=1, n_heads=1)
    model = MicroAccordion(cfg, generator=torch.Generator().manual_seed(0))
    tc = TrainConfig(**{"batch_size": 8, "lr": 1e-2, "eval_every": 1000, **train})  # type: ignore[arg-type]
    return Trainer(model, ByteCorpus(builtin_documents()), tc, kernel_db=KernelDB(),
                   mutator=LuminosityMutator(MutatorConfig(seed=1)))


def test_training_lowers_the_loss_on_the_builtin_corpus() -> None:
    t = _trainer()
    before = t.evaluate()
    t.run(40)
    after = t.evaluate()
    assert before["split_heldout"] == 1.0
    assert after["loss"] < before["loss"] - 1.0, (before, after)
    assert after["bpb"] == pytest.approx(after["loss"] / 0.6931471805599453)


def test_same_seed_twice_trains_the_same_weights() -> None:
    a, b = _trainer(patience=3, mutate_every=1, min_delta=1e9), _trainer(patience=3, mutate_every=1, min_delta=1e9)
    la, lb = [a.train_step().loss for _ in range(8)], [b.train_step().loss for _ in range(8)]
    assert la == lb and a.model.config == b.model.config and a.model.config.generation > 0
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_plateau_triggers_mutation_then_growth() -> None:
    # min_delta so large that the loss never counts as improving: every step deepens the plateau
    t = _trainer(patience=4, mutate_every=1, min_delta=1e9, max_blocks=2, max_heads=2, max_d_model=48,
                 width_delta=16, use_kernel_db=True)
    events: list[str] = []
    t.run(16, lambda info: events.extend(info.events))
    kinds = [e.split(":")[1] if e.startswith("grow") else "mutate" for e in events]
    assert {"heads", "blocks", "width", "mutate"} <= set(kinds), events
    mc = t.model.config
    assert (mc.n_heads, mc.n_blocks, mc.d_model) == (2, 2, 48) and mc.generation == 3
    assert t.mutator.stats["mutations"] >= 1
    assert all(k[1] == mc.generation for k in t.kernel_db.keys())  # type: ignore[union-attr]
    t.run(2)  # keeps training after every growth
    assert t.ema is not None and t.ema == t.ema


def test_checkpoint_round_trip_reproduces_samples_and_training(tmp_path: Path) -> None:
    t = _trainer(use_kernel_db=True)
    t.run(6)
    path = t.save(tmp_path / "a.pt")
    ck = load_checkpoint(path)
    assert ck.model.config == t.model.config
    assert ck.kernel_db is not None and ck.kernel_db.stats() == t.kernel_db.stats()  # type: ignore[union-attr]
    assert ck.mutator is not None and ck.meta["step"] == 6
    assert ck.model.generate(b"hello", 32, seed=4) == t.model.generate(b"hello", 32, seed=4)
    # resuming continues exactly as if training had never stopped
    resumed = Trainer(ck.model, ByteCorpus(builtin_documents()), t.config, kernel_db=ck.kernel_db,
                      mutator=ck.mutator, state=ck.trainer)
    a = [t.train_step().loss for _ in range(3)]
    b = [resumed.train_step().loss for _ in range(3)]
    assert a == b
    # the mutator's generator was saved too: the next mutation is the same
    m1, m2 = MicroAccordion(t.model.config), MicroAccordion(t.model.config)
    t.mutator.mutate(m1, 0.7)
    ck.mutator.mutate(m2, 0.7)
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))


def test_corrupt_checkpoints_raise_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(AccordionError, match="unreadable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(AccordionError, match="not an accordion checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(AccordionError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")


def _commit(repo: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", message], check=True)


def test_git_trajectory_corpus_reads_every_version(git_repo: Path) -> None:
    _commit(git_repo, {"h1.py": "print('a')\n", "notes.txt": "skip me\n"}, "one")
    _commit(git_repo, {"h1.py": "print('ab')\n", ".captures/h1/0001.txt": "$ echo hi\nhi\n"}, "two")
    docs = list(git_documents(git_repo))
    texts = sorted(d.data for d in docs)
    assert texts == sorted([b"print('a')\n", b"print('ab')\n", b"$ echo hi\nhi\n"])
    assert all(d.group == str(git_repo) for d in docs)
    assert [d.data for d in documents_from(git_repo)] == [d.data for d in docs]
    with pytest.raises(AccordionError, match="not a git repository"):
        list(documents_from(git_repo / ".captures"))


def test_corpus_splits_and_batches() -> None:
    docs = [Document(f"d{i}", f"g{i}", bytes([65 + i]) * 100) for i in range(20)]
    tail = ByteCorpus(docs, holdout=0.2)
    assert tail.size("heldout") == 20 * 20  # the last int(0.2 * 101) bytes of every document
    grouped = ByteCorpus(docs, holdout=0.3, split="group")
    assert grouped.size("train") + grouped.size("heldout") == 20 * 101
    assert 0 < grouped.size("heldout") < 20 * 101
    g = torch.Generator().manual_seed(0)
    x, y = tail.batch("train", 4, 16, g)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(AccordionError, match="fewer than a window"):
        ByteCorpus([Document("s", "s", b"tiny")]).batch("train", 1, 16, g)


def test_streaming_corpus_refills_and_caps() -> None:
    docs = (Document(f"d{i}", "g", bytes([i % 256]) * 1000) for i in range(50))
    c = ByteCorpus(docs, holdout=0.0, chunk_bytes=5000, max_bytes=8000, refill_every=1)
    assert c.size("train") == 5005 and not c.exhausted
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        c.batch("train", 2, 8, g)
    assert c.size("train") == 8000 and c.exhausted and c.documents == 50


def test_mutator_strategies_skip_norms_and_follow_the_seed() -> None:
    cfg = AccordionConfig(block_size=8, d_model=16, n_blocks=1, n_heads=1)
    for strategy in ("gaussian", "sign_flip", "zero_mask", "luminosity"):
        a, b = MicroAccordion(cfg), MicroAccordion(cfg)
        ref = MicroAccordion(cfg)
        ra = LuminosityMutator(MutatorConfig(strategy=strategy, rate=0.2, seed=5)).mutate(a, 0.9)
        LuminosityMutator(MutatorConfig(strategy=strategy, rate=0.2, seed=5)).mutate(b, 0.9)
        assert ra.entries > 0
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        for (name, p), q in zip(a.named_parameters(), ref.parameters()):
            module = a.get_submodule(name.rsplit(".", 1)[0])
            if isinstance(module, RMSNorm):
                assert torch.equal(p, q), name
        changed = a.lm_head.weight != ref.lm_head.weight
        if strategy == "zero_mask":
            assert (a.lm_head.weight[changed] == 0).all()
        if strategy == "sign_flip":
            assert torch.equal(a.lm_head.weight[changed], -ref.lm_head.weight[changed])
    lum = LuminosityMutator(MutatorConfig(strategy="luminosity"))
    assert lum.schedule(1.0)[1] > lum.schedule(0.5)[1] > lum.schedule(0.0)[1]
    with pytest.raises(AccordionError, match="strategy"):
        MutatorConfig(strategy="bright")
