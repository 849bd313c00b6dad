"""Fused LSQ kernels for training (quant.kernels): the same fake quantization as the eager
formula, one compilation for every shape and bit-width, eager outside training, and a fallback."""

import pytest
import torch

from robustq.quant import kernels
from robustq.quant.kernels import quant_kernels
from robustq.quant.quantizers import (
    DoReFaActivation,
    LSQQuantizer,
    MinMaxActivation,
    PACTActivation,
    PerChannelLSQ,
    SharedLSQ,
)
from robustq.utils.errors import RobustqError


def _calibrated(q, x):
    q.calibrating = True
    q(x)
    q.calibrating = False
    return q


def _forward_backward(q, x, kind):
    x = x.clone().requires_grad_()
    q.zero_grad()
    with quant_kernels(kind):
        out = q(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), x.grad, [p.grad.clone() for p in q.parameters()]


CASES = [  # (quantizer factory, input shape, signed input): LSQ activations, conv and linear
    (lambda b: LSQQuantizer(b), (8, 4, 6, 6), False),           # weights, a per-channel step;
    (lambda b: LSQQuantizer(b), "channels_last", False),       # the grid-based activations
    (lambda b: LSQQuantizer(b, signed=True), (16, 4, 3, 3), True),   # and PACT, both signs
    (lambda b: LSQQuantizer(b, signed=True), (10, 32), True),
    (lambda b: PerChannelLSQ(b), (16, 4, 3, 3), True),
    (lambda b: SharedLSQ(b), (8, 4, 6, 6), False),
    (lambda b: MinMaxActivation(b), "channels_last", False),
    (lambda b: MinMaxActivation(b), (8, 4, 6, 6), True),
    (lambda b: DoReFaActivation(b), (8, 4, 6, 6), False),
    (lambda b: DoReFaActivation(b), (10, 32), True),
    (lambda b: PACTActivation(b), "channels_last", False),
    (lambda b: PACTActivation(b), (10, 32), True),
]


def test_compiled_kernels_quantize_like_eager_ones_with_few_compilations():
    """Forward bit for bit, the input's straight-through gradient exactly, the learned
    parameters' gradients (sums over every value) up to float reassociation, over 12 quantizers
    x 4 bit-widths; a channels_last activation keeps its layout. Per-channel steps stay eager."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    gen = torch.Generator().manual_seed(0)
    for make, shape, signed in CASES:
        for bits in (2, 3, 4, 8):
            x = torch.randn((8, 4, 6, 6) if shape == "channels_last" else shape,
                            generator=gen) * 2 + 0.5
            x = x if signed else x.relu()
            if shape == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            q = make(bits)
            if isinstance(q, PerChannelLSQ):
                q.fit(x)
            _calibrated(q, x)
            eager, compiled = _forward_backward(q, x, "eager"), _forward_backward(q, x, "compiled")
            assert torch.equal(eager[0], compiled[0]) and torch.equal(eager[1], compiled[1]), q
            assert compiled[0].stride() == x.stride()
            for ge, gc in zip(eager[2], compiled[2], strict=True):
                assert torch.allclose(ge, gc, rtol=1e-4, atol=1e-6), (q, ge, gc)
    assert 6 <= counters["stats"]["unique_graphs"] <= 12, dict(counters["stats"])


def test_outside_training_or_unasked_the_eager_formula_runs(monkeypatch):
    def boom(*args):
        raise AssertionError("compiled kernel called")

    monkeypatch.setattr(kernels._FORWARD, "compiled", boom)
    q = _calibrated(LSQQuantizer(4), torch.rand(64))
    x = torch.rand(64)
    q(x)                                               # default: eager
    with quant_kernels("compiled"), torch.no_grad():   # inference: eager
        q(x)
    with pytest.raises(RobustqError, match="quant_kernels must be one of eager, compiled"):
        with quant_kernels("fused"):
            pass


def test_a_compiler_failure_falls_back_to_the_eager_formula(monkeypatch):
    def broken(*args):
        raise RuntimeError("no C++ compiler")

    for name, fn in (("_FORWARD", kernels._lsq_forward), ("_BACKWARD", kernels._lsq_backward)):
        monkeypatch.setattr(kernels, name, kernels._Compiled(fn))
        monkeypatch.setattr(getattr(kernels, name), "compiled", broken)
    q = _calibrated(LSQQuantizer(4), torch.rand(64))
    x = torch.rand(64)
    expected = _forward_backward(q, x, "eager")
    with pytest.warns(RuntimeWarning, match="training on eager ones"):
        got = _forward_backward(q, x, "compiled")
    assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])
    assert torch.allclose(expected[2][0], got[2][0], rtol=1e-5)
    assert kernels._FORWARD.failed and kernels._BACKWARD.failed
