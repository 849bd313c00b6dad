import pytest
import torch
from torch import nn

from robustq.utils.modes import eval_mode, forward_hooks


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_restores_the_mode_even_after_an_error(training):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train(training)
    with eval_mode(model):
        assert not model.training and not model[1].training
    assert model.training == training
    with pytest.raises(ValueError), eval_mode(model):
        raise ValueError
    assert model.training == training and model[1].training == training


def test_forward_hooks_see_each_named_module_then_are_removed():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seen = []
    layers = {"first": model[0], "last": model[2]}
    with forward_hooks(layers, lambda name, mod, inp, out: seen.append((name, tuple(out.shape)))):
        model(torch.zeros(5, 3))
    assert seen == [("first", (5, 4)), ("last", (5, 2))]
    with pytest.raises(RuntimeError), forward_hooks(layers, lambda *a: seen.append(a)):
        raise RuntimeError
    model(torch.zeros(1, 3))
    assert len(seen) == 2 and not model[0]._forward_hooks and not model[2]._forward_hooks
