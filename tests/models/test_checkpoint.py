import pytest
import torch

from robustq.models import ModelCard, load_checkpoint, save_checkpoint
from robustq.utils.errors import RobustqError


def test_round_trip_is_bit_exact(tmp_path):
    card = ModelCard("resnet20", 10, 3, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26),
                     tuple("abcdefghij"), (32, 32))
    model = card.build()
    for m in model.modules():                    # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_()
            m.running_var.uniform_(0.5, 2)
    path = save_checkpoint(tmp_path / "m.safetensors", model, card, {"sigma": 0.25, "seed": 3})
    loaded, meta = load_checkpoint(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                               strict=True):
        assert k == k2 and torch.equal(a, b)
    assert meta["sigma"] == 0.25 and meta["card"]["classes"] == list("abcdefghij")
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(model.eval()(x), loaded(x))


def test_bad_checkpoints(tmp_path):
    with pytest.raises(RobustqError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(RobustqError, match="not a readable safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")
