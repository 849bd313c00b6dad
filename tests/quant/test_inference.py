"""freeze_quantized: the inference-only copy computes the same quantized classifier."""

import pytest
import torch
from torch import nn

from robustq.models import get_model
from robustq.models.compile import compile_for_inference, fast_inference
from robustq.quant import FP, LayerBits, Policy, quantizable_layers, quantize
from robustq.quant.inference import GridQuantizer, freeze_quantized
from robustq.quant.layers import QuantLayer
from robustq.quant.quantizers import (
    DoReFaActivation,
    LSQQuantizer,
    MinMaxActivation,
    PACTActivation,
)

METHODS = ["minmax", "dorefa", "pact", "lsq"]


def mixed_policy(model: nn.Module) -> Policy:
    """2..8 bits and an FP input, so every grid kind and the identity are exercised."""
    names = list(quantizable_layers(model))
    bits = [(8, FP), (2, 2), (4, 3), (3, 8), (6, 5), (5, 4), (8, 8)]
    return Policy({n: LayerBits(*bits[i % len(bits)]) for i, n in enumerate(names)})


def noisy_batch(m: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(m, 1, 28, 28, generator=g) + 0.25 * torch.randn(m, 1, 28, 28, generator=g)


@pytest.fixture(scope="module")
def fp_model() -> nn.Module:
    torch.manual_seed(0)
    return get_model("small_cnn", num_classes=10, in_channels=1).eval()


@pytest.mark.parametrize("method", METHODS)
def test_frozen_model_computes_exactly_what_the_fake_quantized_one_does(fp_model, method):
    q = quantize(fp_model, mixed_policy(fp_model), method, calibration=noisy_batch(64, 1)).eval()
    frozen = freeze_quantized(q)
    x = noisy_batch(512, 2)
    with torch.inference_mode():
        a, b = q(x), frozen(x)
    assert torch.equal(a, b)                 # eager: the same float computation


def test_frozen_copy_is_plain_and_leaves_the_model_alone(fp_model):
    q = quantize(fp_model, mixed_policy(fp_model), "lsq", calibration=noisy_batch(64, 1))
    before = {k: v.clone() for k, v in q.state_dict().items()}
    frozen = freeze_quantized(q)
    assert not any(isinstance(m, QuantLayer) for m in frozen.modules())
    assert any(isinstance(m, GridQuantizer) for m in frozen.modules())
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(torch.equal(before[k], v) for k, v in q.state_dict().items())
    assert any(isinstance(m, QuantLayer) for m in q.modules())
    # an FP model comes back as an equal eval-mode copy
    plain = freeze_quantized(fp_model)
    x = noisy_batch(8, 3)
    assert torch.equal(plain(x), fp_model(x)) and plain is not fp_model


@pytest.mark.parametrize("make", [MinMaxActivation, DoReFaActivation, PACTActivation,
                                  LSQQuantizer])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits", [2, 5, 8])
def test_grid_reproduces_the_quantizer(make, signed, bits):
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(4000, generator=g) * 3
    x = x if signed else x.relu()
    quantizer = make(bits)
    quantizer.calibrating = True
    quantizer(x)
    quantizer.calibrating = False
    with torch.no_grad():
        want, got = quantizer(x), GridQuantizer(quantizer.grid())(x)
    assert torch.equal(want, got)
    assert got.unique().numel() <= 2**bits


def test_compiled_inference_matches_and_falls_back(fp_model, monkeypatch):
    q = quantize(fp_model, mixed_policy(fp_model), "minmax", calibration=noisy_batch(64, 1))
    frozen = freeze_quantized(q)
    x = noisy_batch(32, 4).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want = q(x)
        traced = fast_inference(frozen, (32, 1, 28, 28), samples=10)   # short run: traced
        assert (traced(x).argmax(1) == want.argmax(1)).float().mean() >= 0.95
        compiled = fast_inference(frozen, (32, 1, 28, 28), samples=10**7)  # long run: compiled
        assert (compiled(x).argmax(1) == want.argmax(1)).float().mean() >= 0.95

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(torch, "compile", broken)
    fallback = compile_for_inference(frozen, (32, 1, 28, 28))
    with torch.inference_mode():
        assert (fallback(x).argmax(1) == want.argmax(1)).float().mean() >= 0.95
