import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustq.quant.quantizers import (
    DoReFaActivation,
    DoReFaWeight,
    LSQQuantizer,
    MinMaxActivation,
    MinMaxWeight,
    PACTActivation,
    PerChannelLSQ,
    SharedLSQ,
    check_method,
    get_quantizers,
    list_methods,
)
from robustq.utils.errors import RobustqError


def make(kind: str, bits: int, calib: torch.Tensor):
    q = {"minmax_w": lambda: MinMaxWeight(bits), "minmax_w_pc": lambda: MinMaxWeight(bits, True),
         "minmax_a": lambda: MinMaxActivation(bits), "dorefa_w": lambda: DoReFaWeight(bits),
         "dorefa_a": lambda: DoReFaActivation(bits), "pact": lambda: PACTActivation(bits),
         "lsq_w": lambda: LSQQuantizer(bits, signed=True), "lsq_a": lambda: LSQQuantizer(bits),
         "shared_w": lambda: SharedLSQ(bits, signed=True), "shared_a": lambda: SharedLSQ(bits)}[kind]()
    q.calibrating = True
    q(calib)
    q.calibrating = False
    return q


KINDS = ["minmax_w", "minmax_w_pc", "minmax_a", "dorefa_w", "dorefa_a", "pact", "lsq_w", "lsq_a",
         "shared_w", "shared_a"]
tensors = st.integers(0, 2**31 - 1).map(
    lambda s: torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(s)) * 2)


@settings(max_examples=25, deadline=None)
@given(x=tensors, bits=st.integers(2, 8), kind=st.sampled_from(KINDS))
def test_at_most_2_to_the_b_levels(x, bits, kind):
    q = make(kind, bits, x)
    out = q(x)
    per_tensor = [out[i] for i in range(len(out))] if kind == "minmax_w_pc" else [out]
    for o in per_tensor:
        assert len(torch.unique(o)) <= 2**bits


@settings(max_examples=25, deadline=None)
@given(x=tensors, bits=st.integers(2, 8),
       kind=st.sampled_from([k for k in KINDS if k != "dorefa_w"]))
def test_idempotent(x, bits, kind):
    q = make(kind, bits, x)
    once = q(x)
    assert torch.allclose(q(once), once, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(x=tensors, bits=st.integers(2, 8))
def test_dorefa_weights_lie_on_their_grid(x, bits):
    """DoReFa's weight map passes through tanh, so it is not a projection (not idempotent) by
    design; what it guarantees is output on the 2^k-point grid 2i/(2^k-1) - 1 (times max|w|)."""
    q = DoReFaWeight(bits, keep_scale=False)
    grid = (q(x) + 1) / 2 * (2**bits - 1)
    assert torch.allclose(grid, grid.round(), atol=1e-4) and q(x).abs().max() <= 1 + 1e-6


def test_minmax_hand_worked():
    w = torch.tensor([-1.0, -0.26, 0.0, 0.2, 0.5])
    # 3 bits: q_max = 3, scale = 1/3 -> levels -1, -2/3, ..., 1
    expected = torch.tensor([-1.0, -1 / 3, 0.0, 1 / 3, 2 / 3])
    assert torch.allclose(MinMaxWeight(3)(w), expected)
    a = make("minmax_a", 2, torch.tensor([0.0, 3.0]))          # range [0, 3], 3 steps of 1
    assert torch.equal(a(torch.tensor([0.4, 0.6, 2.6, 7.0])), torch.tensor([0.0, 1.0, 3.0, 3.0]))


def test_dorefa_hand_worked():
    w = torch.tensor([-2.0, 0.0, 0.3, 2.0])
    t = torch.tanh(w)
    r = t / (2 * t.abs().max()) + 0.5                 # [0, 0.5, 0.5 + tanh(.3)/(2 tanh 2), 1]
    k = 2                                               # q_2 rounds r*3
    expected = 2 * torch.round(r * 3) / 3 - 1          # [-1, 1/3 (0.5*3=1.5 -> 2), ..., 1]
    assert torch.allclose(DoReFaWeight(k, keep_scale=False)(w), expected)
    assert torch.allclose(DoReFaWeight(k)(w), expected * 2.0)       # times max|w|
    a = DoReFaActivation(2)                                 # uncalibrated: the paper's r = 1
    assert torch.allclose(a(torch.tensor([-0.5, 0.2, 0.5, 0.9, 3.0])),
                          torch.tensor([0.0, 1 / 3, 2 / 3, 1.0, 1.0]))
    a = make("dorefa_a", 2, torch.tensor([0.0, 6.0]))       # calibrated range r = 6
    assert torch.allclose(a(torch.tensor([1.2, 2.9, 6.5])), torch.tensor([2.0, 2.0, 6.0]))


def test_pact_forward_and_gradients_match_the_paper():
    q = PACTActivation(2, init_alpha=3.0)
    x = torch.tensor([-1.0, 0.4, 1.6, 2.9, 3.0, 5.0], requires_grad=True)
    y = q(x)                                            # levels 0, 1, 2, 3 (alpha / 3 = 1)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.0, 2.0, 3.0, 3.0, 3.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0, 0.0]))   # 0 <= x < alpha
    assert q.alpha.grad.item() == 2.0                   # d y_q / d alpha = 1 where x >= alpha


def test_lsq_forward_and_step_gradient_match_the_paper():
    q = LSQQuantizer(3)                                 # unsigned: Q_N = 0, Q_P = 7
    q.initialized.fill_(True)
    with torch.no_grad():
        q.step.fill_(0.5)
    v = torch.tensor([-0.3, 0.26, 1.1, 3.3, 9.0], requires_grad=True)
    out = q(v)
    assert torch.allclose(out.detach(), torch.tensor([0.0, 0.5, 1.0, 3.5, 3.5]))
    out.sum().backward()
    vs = v.detach() / 0.5
    inside = torch.tensor([False, True, True, True, False])
    per_elem = torch.where(inside, -vs + torch.round(vs), torch.where(vs < 0, 0.0, 7.0))
    g = 1 / math.sqrt(5 * 7)
    assert q.step.grad.item() == pytest.approx(per_elem.sum().item() * g, rel=1e-5)
    assert torch.equal(v.grad, inside.float())          # STE inside the range, 0 outside


@pytest.mark.parametrize("kind", KINDS)
def test_a_bfloat16_input_is_rounded_on_the_grid_in_float32(kind):
    """Under bf16 autocast a quantizer receives bfloat16 activations: it rounds them in float32
    (the same values as their float32 copy gives) and passes gradients back to the bf16 input."""
    calib = torch.randn(4, 3, 3, 3) * 2
    q = make(kind, 8, calib)
    x = (torch.randn(4, 3, 3, 3) * 2).to(torch.bfloat16).requires_grad_()
    out = q(x)
    assert out.dtype == torch.float32 and torch.equal(out, q(x.detach().float()))
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16


def test_lsq_initial_step():
    x = torch.randn(1000)
    q = make("lsq_w", 4, x)                             # signed 4 bits: Q_P = 7
    assert q.step.item() == pytest.approx(2 * x.abs().mean().item() / math.sqrt(7), rel=1e-5)


def test_ste_gradient_is_identity_inside_range():
    w = torch.randn(50, requires_grad=True)
    MinMaxWeight(4)(w).sum().backward()
    assert torch.equal(w.grad, torch.ones(50))


def test_fp_bits_is_identity_and_registry():
    x = torch.randn(10)
    for m in list_methods():
        wq, aq = get_quantizers(m)
        assert torch.equal(wq(x), x) and torch.equal(aq(x), x)
    assert set(list_methods()) == {"minmax", "dorefa", "pact", "lsq", "lsq_pc", "lsq_mse",
                                   "lsq_shared"}
    with pytest.raises(RobustqError, match="unknown quantization method 'xnor'; choose one of"):
        get_quantizers("xnor")


def test_check_method_accepts_known_and_none_names_the_known_on_error():
    for m in [*list_methods(), None]:
        check_method(m)
    with pytest.raises(RobustqError, match="choose one of: dorefa, lsq,"):
        check_method("LSQ")


@settings(max_examples=20, deadline=None)
@given(x=tensors, bits=st.integers(2, 8), signed=st.booleans())
def test_shared_lsq_at_one_width_is_lsq(x, bits, signed):
    """Calibrated on the same batch, SharedLSQ and LSQ agree at every width, values and step
    gradients alike."""
    v = x if signed else x.abs()
    plain, shared = LSQQuantizer(bits, signed=signed), SharedLSQ(bits, signed=signed)
    for q in (plain, shared):
        q.calibrating = True
        q(v)
        q.calibrating = False
    vp, vs = v.clone().requires_grad_(), v.clone().requires_grad_()
    out_p, out_s = plain(vp), shared(vs)
    assert torch.equal(out_p, out_s)
    (out_p * v).sum().backward()
    (out_s * v).sum().backward()
    assert shared.steps.grad[bits].item() == pytest.approx(plain.step.grad.item(), rel=1e-5)
    assert torch.count_nonzero(shared.steps.grad).item() <= 1      # only the width in use learns
    assert torch.equal(vp.grad, vs.grad)


def test_shared_lsq_keeps_each_widths_step_when_rebitted():
    x = torch.randn(500)
    q = SharedLSQ(4, signed=True)
    q.calibrating = True
    q(x)                                   # every width's step from this one batch
    q.calibrating = False
    assert bool(q.initialized[2:].all()) and not bool(q.initialized[:2].any())
    for b in range(2, 9):
        q_p = 2 ** (b - 1) - 1
        assert q.steps[b].item() == pytest.approx(2 * x.abs().mean().item() / math.sqrt(q_p),
                                                  rel=1e-5)
    with torch.no_grad():
        q.steps[4] = 0.123
    q.bits = 6
    q.bits_changed()
    q.bits = 4
    q.bits_changed()                       # plain LSQ would forget its step here
    assert q.steps[4].item() == pytest.approx(0.123) and q.grid().scale == pytest.approx(0.123)
    plain = LSQQuantizer(4, signed=True)
    plain.calibrating = True
    plain(x)
    plain.bits_changed()
    assert not bool(plain.initialized)


def _sq_error(q, r: float, x: torch.Tensor) -> float:
    return float(((q.grid_at(r).apply(x) - x) ** 2).mean())


@pytest.mark.parametrize("make_q", [DoReFaActivation, PACTActivation])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_mse_clip_is_near_the_best_range_on_the_raw_activations(make_q, bits):
    """A ReLU-like sample with a rare far tail: the histogram's MSE range has less error than
    the max (at 2 bits: under half the max, under half its error) and is within 2% of the least
    error found by brute force on the raw values."""
    gen = torch.Generator().manual_seed(bits)
    x = torch.randn(20_000, generator=gen).relu()
    x[:10] = 12.0
    q = make_q(bits)
    q.calibrating = True
    for part in x.split(5000):
        q(part)
    q.calibrating = False
    clip = float(q.clip)
    best = min(_sq_error(q, r, x) for r in torch.linspace(0.01, 12.0, 2000).tolist())
    assert _sq_error(q, clip, x) <= 1.02 * best
    assert _sq_error(q, clip, x) < _sq_error(q, float(x.max()), x)
    if bits == 2:
        assert clip < 0.5 * float(x.max())
        assert _sq_error(q, clip, x) < 0.5 * _sq_error(q, float(x.max()), x)


def test_clip_by_max_rebits_and_old_checkpoints():
    x = torch.cat([torch.rand(5000), torch.tensor([9.0])])
    by_max = DoReFaActivation(2, clip="max")
    by_mse = DoReFaActivation(2)
    for q in (by_max, by_mse):
        q.calibrating = True
        q(x)
        q.calibrating = False
    assert float(by_max.clip) == 9.0 and float(by_mse.clip) < 2.0
    two_bit = float(by_mse.clip)
    by_mse.bits = 8
    by_mse.bits_changed()                     # recomputed from the calibration histogram
    assert two_bit < float(by_mse.clip) <= 9.0
    old = {k: v for k, v in by_mse.state_dict().items() if k != "clip"}   # before clip existed
    loaded = DoReFaActivation(8)
    loaded.load_state_dict(old)
    assert float(loaded.clip) == 9.0 and float(loaded.range()) == 9.0
    with pytest.raises(RobustqError, match="clipping range"):
        DoReFaActivation(2, clip="percentile")


@settings(max_examples=20, deadline=None)
@given(bits=st.integers(2, 8), seed=st.integers(0, 10_000))
def test_per_channel_lsq_is_one_lsq_per_output_channel(bits, seed):
    """Each output channel is quantized, and its step learns, exactly as a per-tensor LSQ on
    that channel alone: the same initial step, values and step gradient (N_c = the channel's
    weight count); channel scales that differ 20-fold get steps that differ too."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(6, 3, 3, 3, generator=g) * torch.logspace(-1, 0.3, 6).view(-1, 1, 1, 1)
    pc = PerChannelLSQ(bits)
    pc.fit(w)
    pc.calibrating = True
    pc(w)
    pc.calibrating = False
    assert pc.step.shape == (6,)
    wp = w.clone().requires_grad_()
    out = pc(wp)
    (out * w).sum().backward()
    for c in range(6):
        one = LSQQuantizer(bits, signed=True)
        one.calibrating = True
        one(w[c])
        one.calibrating = False
        assert pc.step[c].item() == pytest.approx(one.step.item(), rel=1e-5)
        v = w[c].clone().requires_grad_()
        ref = one(v)
        (ref * w[c]).sum().backward()
        assert torch.allclose(out[c].detach(), ref.detach(), atol=1e-6)
        assert pc.step.grad[c].item() == pytest.approx(one.step.grad.item(), rel=1e-4, abs=1e-7)
        assert torch.equal(wp.grad[c], v.grad)
    assert pc.step.max() > 5 * pc.step.min()


def test_per_channel_lsq_steps_survive_a_checkpoint_round_trip(tmp_path):
    from robustq.models import ModelCard
    from robustq.quant import quantize
    from robustq.quant.checkpoint import load_model, save_quantized
    from robustq.quant.policy import uniform_policy

    card = ModelCard("resnet20", 4, 3, (0.5,) * 3, (0.25,) * 3, ("a", "b", "c", "d"), (32, 32))
    fp = card.build().eval()
    x = torch.rand(8, 3, 32, 32)
    q = quantize(fp, uniform_policy(fp, 4, 4, None), "lsq_pc", calibration=[x]).eval()
    steps = {n: m.step for n, m in q.named_modules() if isinstance(m, PerChannelLSQ)}
    assert steps and all(s.shape == (s.numel(),) and s.numel() > 1 for s in steps.values())
    save_quantized(tmp_path / "q.safetensors", q, card, {"sigma": 0.25})
    loaded, meta = load_model(tmp_path / "q.safetensors")
    assert meta["quant"]["method"] == "lsq_pc"
    for n, m in loaded.named_modules():
        if isinstance(m, PerChannelLSQ):
            assert torch.equal(m.step, steps[n])
    assert torch.equal(loaded(x), q(x))
    with pytest.raises(RobustqError, match="no single grid"):
        next(iter(m for m in q.modules() if isinstance(m, PerChannelLSQ))).grid()


def test_lsq_mse_starts_activations_at_the_least_error_step_and_weights_as_lsq():
    from robustq.quant.quantizers import MSEStepLSQ, mse_step

    torch.manual_seed(0)
    relu = torch.randn(4096).clamp(min=0)                  # a ReLU output: half of it zeros
    w = torch.randn(4096) * 0.1

    def error(q, x):
        return float(((q(x) - x) ** 2).mean())

    paper, ours = LSQQuantizer(2), MSEStepLSQ(2)
    assert error(ours, relu) < 0.8 * error(paper, relu)   # observe + init on this batch
    assert float(ours.step) == pytest.approx(float(mse_step(relu, 0, 3)))
    steps = [float(mse_step(relu, 0, 3) * f) for f in (0.9, 1.1)]
    for s in steps:                                        # a local minimum on the grid
        assert float(((torch.round(torch.clamp(relu / s, 0, 3)) * s - relu) ** 2).mean()) \
            >= error(ours, relu) - 1e-9
    wq, aq = get_quantizers("lsq_mse")
    lsq_w, _ = get_quantizers("lsq")
    for q in (wq, lsq_w):
        q.bits = 2
        q.bits_changed()
    assert torch.equal(wq(w), lsq_w(w)) and isinstance(aq, MSEStepLSQ)
