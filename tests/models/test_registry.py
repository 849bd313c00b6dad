import pytest
import torch

from robustq.models import get_model, list_models
from robustq.utils.errors import RobustqError


def test_registry_lists_the_zoo_architectures():
    assert {"resnet20", "resnet56", "resnet110", "resnet18", "mobilenetv2",
            "small_cnn"} <= set(list_models())


def test_unknown_model_lists_choices():
    with pytest.raises(RobustqError, match="unknown model 'resnet21'; choose one of: .*resnet20"):
        get_model("resnet21")


@pytest.mark.parametrize("name,c,size", [("resnet20", 3, 32), ("resnet18", 3, 32),
                                         ("mobilenetv2", 3, 32), ("small_cnn", 1, 28)])
def test_forward_shapes(name, c, size):
    model = get_model(name, num_classes=7, in_channels=c).eval()
    assert model(torch.rand(2, c, size, size)).shape == (2, 7)


@pytest.mark.parametrize("name,convs", [("resnet20", 19), ("resnet56", 55), ("resnet110", 109)])
def test_cifar_resnet_depth(name, convs):
    model = get_model(name)
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    n_fc = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert (n_conv, n_fc) == (convs, 1)      # 6n+2 weighted layers, option-A shortcuts


def test_resnet20_parameter_count_matches_he_et_al():
    n = sum(p.numel() for p in get_model("resnet20").parameters())
    assert 0.26e6 < n < 0.28e6               # "0.27M" in He et al. Table 6


def test_normalization_is_inside_the_model():
    model = get_model("small_cnn", in_channels=1, mean=(0.13,), std=(0.31,))
    x = torch.full((1, 1, 4, 4), 0.13)
    assert torch.allclose(model.normalize(x), torch.zeros_like(x), atol=1e-6)
    assert "normalize.mean" in model.state_dict()


def test_resnet20_macs_equal_a_hand_count():
    from robustq.models.flops import layer_macs

    macs = layer_macs(get_model("resnet20"), (3, 32, 32))
    conv3x3 = lambda hw, cin, cout: hw * hw * cout * cin * 9  # noqa: E731
    hand = (conv3x3(32, 3, 16) + 6 * conv3x3(32, 16, 16)
            + conv3x3(16, 16, 32) + 5 * conv3x3(16, 32, 32)
            + conv3x3(8, 32, 64) + 5 * conv3x3(8, 64, 64) + 64 * 10)
    assert len(macs) == 20 and sum(macs.values()) == hand == 40_551_040
    assert macs["conv1"] == 32 * 32 * 16 * 27 and macs["fc"] == 640


@pytest.mark.parametrize("name,c,size", [("resnet20", 3, 32), ("small_cnn", 1, 28)])
def test_frozen_model_computes_the_same_function(name, c, size):
    from robustq.models.compile import freeze_for_inference

    torch.manual_seed(0)
    model = get_model(name, in_channels=c)
    model.train()
    model(torch.rand(16, c, size, size))           # non-trivial BatchNorm statistics
    model.eval()
    x = torch.rand(8, c, size, size)
    with torch.no_grad():
        expected = model(x)
    frozen = freeze_for_inference(model, (8, c, size, size))
    assert isinstance(frozen, torch.jit.ScriptModule)
    with torch.inference_mode():
        assert torch.allclose(frozen(x.contiguous(memory_format=torch.channels_last)), expected,
                              atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["resnet20", "small_cnn", "resnet18", "mobilenetv2"])
def test_bounded_activations(arch):
    from robustq.models.base import set_activation_bound

    model = get_model(arch, num_classes=10, in_channels=3, mean=(0.5,) * 3, std=(0.25,) * 3).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        set_activation_bound(model, 1e-3)
        assert not torch.equal(model(x), plain)
        set_activation_bound(model, None)
        if arch != "mobilenetv2":           # MobileNetV2 starts as ReLU6
            assert torch.allclose(model(x), plain)
    with pytest.raises(ValueError, match="bound must be > 0"):
        set_activation_bound(model, 0.0)


def test_card_rebuilds_the_bound():
    from robustq.models import ModelCard

    card = ModelCard("small_cnn", 10, 3, (0.5,) * 3, (0.25,) * 3, extra={"act_bound": 2.0})
    model = ModelCard.from_json(card.to_json()).build()
    assert {m.act_bound for m in model.modules() if hasattr(m, "act_bound")} == {2.0}
