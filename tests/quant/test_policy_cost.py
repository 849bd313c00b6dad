import json

import pytest
import torch

from robustq.models import ModelCard, get_model
from robustq.quant import LayerBits, Policy, model_cost, quantize, uniform_policy
from robustq.quant.checkpoint import load_model, save_quantized
from robustq.utils.errors import RobustqError

MACS_R20 = 40_551_040


def test_resnet20_bitops_equal_a_hand_count():
    model = get_model("resnet20")
    c = model_cost(model, uniform_policy(model, 4, 4, None, False), (3, 32, 32))
    assert c.bitops == MACS_R20 * 16 and c.bitops_percent == pytest.approx(1.5625)
    # first/last at 8/8, first input FP: conv1 = 442,368 MACs x 8 x 32; fc = 640 x 8 x 8
    c = model_cost(model, uniform_policy(model, 4, 4), (3, 32, 32))
    hand = 442_368 * 8 * 32 + 640 * 8 * 8 + (MACS_R20 - 442_368 - 640) * 16
    assert c.bitops == hand
    weights = sum(m.weight.numel() for m in model.modules()
                  if isinstance(m, torch.nn.Conv2d | torch.nn.Linear))
    assert c.weight_bits == 432 * 8 + 640 * 8 + (weights - 432 - 640) * 4
    fp = model_cost(model, uniform_policy(model, 32, 32, None, False), (3, 32, 32))
    assert fp.bitops_percent == 100.0 and fp.weight_bytes == weights * 4


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_policy_round_trips(tmp_path, suffix):
    model = get_model("resnet20")
    p = uniform_policy(model, 3, 5)
    p = Policy({**{k: v for k, v in p.items()}, "layer2.1.conv1": LayerBits(2, 6)})
    assert Policy.load(p.save(tmp_path / f"p{suffix}")) == p
    assert Policy.from_json(json.loads(json.dumps(p.to_json()))) == p
    text = (tmp_path / f"p{suffix}").read_text()
    assert "layer2.1.conv1" in text                    # readable, keyed by module name


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.update({"layer9.conv": {"w": 4, "a": 4}}), "unknown layer 'layer9.conv'"),
    (lambda d: d.pop("layer1.0.conv2"), "missing layer 'layer1.0.conv2'"),
    (lambda d: d.update({"fc": {"w": 9, "a": 4}}), "layer 'fc': weight bits must lie in"),
    (lambda d: d.update({"fc": {"w": 4, "a": 1}}), "layer 'fc': activation bits must lie in"),
    (lambda d: d.update({"fc": {"w": 4.5, "a": 4}}), "layer 'fc': weight bits must be an integer"),
    (lambda d: d.update({"fc": {"w": "4", "a": 4}}), "layer 'fc': weight bits must be an integer"),
])
def test_bad_policies_name_the_layer(tmp_path, edit, message):
    model = get_model("resnet20")
    d = uniform_policy(model, 4, 4).to_json()
    edit(d)
    (tmp_path / "p.json").write_text(json.dumps({"layers": d}))
    with pytest.raises(RobustqError, match=message):
        Policy.load(tmp_path / "p.json").validate(model)


@pytest.mark.parametrize("method", ["minmax", "dorefa", "pact", "lsq"])
def test_quantized_checkpoint_reloads_bit_exactly(tmp_path, method):
    card = ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.25,) * 3)
    torch.manual_seed(0)
    model = card.build()
    policy = uniform_policy(model, 4, 3)
    q = quantize(model, policy, method, calibration=torch.rand(8, 3, 32, 32))
    q.train()
    opt = torch.optim.SGD(q.parameters(), lr=0.01)      # move learned quantizer parameters
    torch.nn.functional.cross_entropy(q(torch.rand(8, 3, 32, 32)), torch.arange(8)).backward()
    opt.step()
    q.eval()
    save_quantized(tmp_path / "q.safetensors", q, card, {"sigma": 0.25})
    loaded, meta = load_model(tmp_path / "q.safetensors")
    assert meta["quant"]["method"] == method
    for (k, a), (k2, b) in zip(q.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(q(x), loaded(x))


def test_quantize_leaves_the_original_alone_and_rebits_in_place():
    from robustq.quant import get_policy, set_policy

    model = get_model("resnet20").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize(model, uniform_policy(model, 4, 4), "lsq", calibration=torch.rand(4, 3, 32, 32))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model.conv1, torch.nn.Conv2d) and not hasattr(model.conv1, "w_bits")
    new = uniform_policy(model, 6, 5)
    set_policy(q, new)
    assert get_policy(q) == new
