"""The registries: one way to add, list and look up each family's members; an unknown name is
refused listing the known ones."""

import pytest
import torch

from robustq.bench.corruptions import ALL, CORRUPTION_REGISTRY
from robustq.bench.systematic import DECODER_REGISTRY, DECODERS
from robustq.data.load import DATA_FORMATS, FORMATS
from robustq.models import get_model
from robustq.models.approx import APPROXIMATIONS, approximate
from robustq.utils.errors import RobustqError
from robustq.utils.registry import Registry


def test_register_list_get_and_refusals():
    reg: Registry[int] = Registry("colour")
    reg.register("red")(1)
    reg.register("blue")(2)
    assert reg.names() == ["red", "blue"] and reg.get("blue") == 2 and "red" in reg
    with pytest.raises(RobustqError, match="unknown colour 'green'; known: red, blue"):
        reg.get("green")
    with pytest.raises(ValueError, match="twice"):
        reg.register("red")(3)


def test_every_family_is_registered():
    assert set(CORRUPTION_REGISTRY) == set(ALL) and len(ALL) == 19
    assert DECODER_REGISTRY.names() == DECODERS == ["pillow", "opencv", "simplejpeg-fast"]
    assert FORMATS == tuple(DATA_FORMATS) and "imagefolder" in FORMATS
    assert APPROXIMATIONS.names() == ["bf16", "prune"]


@pytest.mark.parametrize("spec,match", [("fp8", "unknown approximation 'fp8'; known: bf16, prune"),
                                        ("prune", "needs a fraction"), ("prune:x", "needs a fraction"),
                                        ("prune:1.5", r"\[0, 1\)"), ("bf16:2", "no argument")])
def test_bad_approximations_are_refused(spec, match):
    with pytest.raises(RobustqError, match=match):
        approximate(get_model("small_cnn", in_channels=1), spec)


def test_approximations_by_name():
    model = get_model("small_cnn", in_channels=1).eval()
    pruned = approximate(model, "prune:0.5")
    weights = torch.cat([m.weight.flatten() for m in pruned.modules() if hasattr(m, "weight")
                         and isinstance(m, torch.nn.Conv2d | torch.nn.Linear)])
    assert 0.45 < float((weights == 0).float().mean()) < 0.55
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(approximate(model, "bf16")(x), model(x), atol=0.1)
