from __future__ import annotations

import pytest
import torch

from accordion.errors import AccordionError
from accordion.model import AccordionConfig, MicroAccordion, TanhLUT, fake_quant, quant_scale


def _model(**kw: object) -> MicroAccordion:
    base: dict[str, object] = {"block_size": 16, "d_model": 16, "n_blocks": 1, "n_heads": 2}
    base.update(kw)
    return MicroAccordion(AccordionConfig(**base))  # type: ignore[arg-type]


def _bytes(B: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(seed))


def test_config_rejects_bad_sizes() -> None:
    with pytest.raises(AccordionError, match="not divisible"):
        AccordionConfig(d_model=30, n_heads=4)
    with pytest.raises(AccordionError, match="bits"):
        AccordionConfig(bits=1)
    with pytest.raises(AccordionError, match="unknown field"):
        AccordionConfig.from_dict({"d_model": 8, "colour": "red"})
    cfg = AccordionConfig(d_model=24, n_heads=3).resolved()
    assert (cfg.head_dim, cfg.norm_dim) == (8, 24)
    assert AccordionConfig.from_dict(cfg.to_dict()) == cfg


def test_fake_quant_is_a_per_row_4bit_grid_with_identity_gradient() -> None:
    w = torch.randn(6, 10, generator=torch.Generator().manual_seed(1), requires_grad=True)
    q = fake_quant(w, 4)
    codes = q.detach() / quant_scale(w, 4)
    assert torch.allclose(codes, codes.round(), atol=1e-4)  # on the grid
    assert codes.abs().max() <= 7 + 1e-4  # 15 signed levels: 4 bits
    assert (q.detach() - w.detach()).abs().max() <= quant_scale(w, 4).max() / 2 + 1e-6
    upstream = torch.randn(6, 10, generator=torch.Generator().manual_seed(2))
    q.backward(upstream)
    assert w.grad is not None and torch.equal(w.grad, upstream)  # straight through


def test_gradients_reach_every_quantized_weight() -> None:
    m = _model(quantize=True)
    idx = _bytes(2, 16)
    _, loss = m(idx[:, :-1], idx[:, 1:])
    assert loss is not None
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("weight") and "norm" not in name:
            assert p.grad.abs().sum() > 0, name


def test_quantization_switch_changes_the_function() -> None:
    m = _model(quantize=True)
    idx = _bytes(1, 16)
    with torch.no_grad():
        on, _ = m(idx)
        m.set_quantize(False)
        off, _ = m(idx)
        m.set_quantize(True)
        again, _ = m(idx)
    assert not torch.allclose(on, off)
    assert torch.equal(on, again)
    assert m.config.quantize


def test_inference_cache_follows_weight_updates() -> None:
    m = _model(quantize=True)
    idx = _bytes(1, 16)
    with torch.no_grad():
        a, _ = m(idx)
        m.lm_head.weight.mul_(-1.0)  # in place: bumps the version, the cached view must follow
        b, _ = m(idx)
    assert torch.allclose(a, -b, atol=1e-5)


def test_tanh_lut_matches_tanh_and_its_slope() -> None:
    lut = TanhLUT(1024, 6.0)
    x = torch.linspace(-5.9, 5.9, 2001, requires_grad=True)
    y = lut(x)
    assert (y - torch.tanh(x)).abs().max() < 1e-4
    y.sum().backward()
    assert x.grad is not None
    assert (x.grad - (1 - torch.tanh(x.detach()) ** 2)).abs().max() < 2e-2
    far = lut(torch.tensor([-50.0, 50.0]))
    assert torch.allclose(far, torch.tensor([-1.0, 1.0]), atol=1e-4)


def test_generate_is_reproducible_per_seed() -> None:
    m = _model()
    a = m.generate(b"hi", 24, seed=7, temperature=1.0)
    b = m.generate(b"hi", 24, seed=7, temperature=1.0)
    c = m.generate(b"hi", 24, seed=8, temperature=1.0)
    assert a == b and len(a) == 24
    assert a != c
    assert m.generate(b"hi", 5, temperature=0) == m.generate(b"hi", 5, temperature=0, seed=99)
    assert len(m.generate(b"", 3, seed=1, top_k=4)) == 3
    idx = _bytes(2, 16)
    with torch.no_grad():
        full, _ = m(idx)
        last, _ = m(idx, last_only=True)
    assert last.shape == (2, 1, 256) and torch.allclose(last[:, 0], full[:, -1], atol=1e-6)


def test_context_overflow_and_footprint() -> None:
    m = _model()
    with pytest.raises(AccordionError, match="exceeds the context"):
        m(_bytes(1, 17))
    fp = m.footprint()
    assert fp["params"] == m.num_params()
    assert fp["code_bytes"] == (fp["quantized_params"] + 1) // 2
    assert fp["quantized_bytes"] < fp["float32_bytes"] / 4
