"""ReusableInference: one template serves many candidates, each computed as its frozen copy."""

import pickle

import pytest
import torch
from torch import nn

from robustq.quant import FP, LayerBits, Policy, quantizable_layers, quantize
from robustq.quant.inference import freeze_quantized
from robustq.quant.reusable import ReusableInference, TensorGridQuantizer, layout
from tests.quant.test_inference import fp_model, mixed_policy, noisy_batch  # noqa: F401


def policy_of(model: nn.Module, w: int, a: int) -> Policy:
    return Policy({n: LayerBits(w, a) for n in quantizable_layers(model)})


def frozen_cl(q: nn.Module) -> nn.Module:
    """The frozen copy in the template's memory format (channels_last changes float rounding,
    and with it, at a grid boundary, a level)."""
    return freeze_quantized(q).to(memory_format=torch.channels_last)


def candidates(fp: nn.Module, method: str = "lsq") -> list[nn.Module]:
    calib = noisy_batch(64, seed=1)
    return [quantize(fp, policy_of(fp, w, a), method, calibration=calib).eval()
            for w, a in ((4, 4), (2, 6), (8, 3))]


@torch.no_grad()
def test_eager_template_computes_each_candidate_bit_for_bit(fp_model):  # noqa: F811
    x = noisy_batch(32, seed=2)
    engine = ReusableInference(compile=False)
    outs = []
    for q in candidates(fp_model) + candidates(fp_model, "minmax"):
        run = engine(q)
        out = run(x)
        assert torch.equal(out, frozen_cl(q)(x))            # the same function, bit for bit
        outs.append(out)
    assert len(engine._templates) == 1                   # one layout: one template
    assert not any(torch.allclose(outs[0], o) for o in outs[1:])   # it really was reloaded


@torch.no_grad()
def test_a_layer_with_an_fp_input_is_another_layout(fp_model):  # noqa: F811
    q1, q2 = candidates(fp_model)[:1] + [quantize(fp_model, mixed_policy(fp_model), "lsq",
                                                  calibration=noisy_batch(64, 1)).eval()]
    assert any(b.a == FP for b in mixed_policy(fp_model).values())
    engine = ReusableInference(compile=False)
    x = noisy_batch(8, seed=3)
    with torch.inference_mode():                         # made here, loaded again outside
        engine(q1)
    for q in (q1, q2, q1):
        assert torch.equal(engine(q)(x), frozen_cl(q)(x))
    assert len(engine._templates) == 2
    assert layout(engine._templates[next(iter(engine._templates))][0]) != layout(
        freeze_quantized(q2))


@torch.no_grad()
def test_compiled_template_compiles_once_for_all_candidates(fp_model):  # noqa: F811
    from torch._dynamo.utils import counters

    torch.compiler.reset()
    counters.clear()
    x = noisy_batch(16, seed=4)
    engine = ReusableInference()
    for q in candidates(fp_model):
        out = engine(q)(x)
        ref = frozen_cl(q)(x)
        # float rounding may move a value at a grid boundary one level: compare predictions
        assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.9
        assert torch.allclose(out, ref, rtol=1e-3, atol=1e-2)
    assert counters["stats"]["unique_graphs"] == 1
    run = engine(candidates(fp_model)[1])
    shipped = pickle.loads(pickle.dumps(run))             # compiles again where it lands
    assert torch.allclose(shipped(x), run(x), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_bf16_template_stays_close_to_the_candidate(fp_model):  # noqa: F811
    x = noisy_batch(64, seed=5)
    engine = ReusableInference("bf16", compile=False)
    for q in candidates(fp_model):
        ref = frozen_cl(q)(x)
        out = engine(q)(x)
        assert out.dtype == torch.float32
        scale = ref.abs().max()
        assert (out - ref).abs().max() <= 0.1 * scale     # bf16 keeps ~3 significant digits
        assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.8


def test_grids_live_in_buffers_and_the_engine_pickles(fp_model):  # noqa: F811
    q = candidates(fp_model)[0]
    engine = ReusableInference(compile=False)
    run = engine(q)
    grids = [m for m in run.modules() if isinstance(m, TensorGridQuantizer)]
    assert grids and all(g.scale.ndim == 0 and g.scale.dtype == torch.float32 for g in grids)
    x = noisy_batch(4, seed=6)
    with torch.no_grad():
        assert torch.equal(pickle.loads(pickle.dumps(run))(x), run(x))
    with pytest.raises(ValueError, match="precision"):
        ReusableInference("fp16")
