"""Multiply-accumulates per layer from real shapes, measured with one dummy forward pass."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


@torch.no_grad()
def layer_macs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """MACs of each Conv2d and Linear layer (by qualified name) for ONE input of ``input_shape``.

    ``input_shape`` is ``(C, H, W)``. A conv's MACs are ``out_elements * (C_in / groups) * k_h *
    k_w``; a linear layer's are ``in_features * out_features``. Biases, BN, pooling and
    activations are not counted (negligible, and not multiplies of quantized operands).
    """
    macs: dict[str, int] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            def conv_hook(mod, inp, out, name=name):
                k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                macs[name] = macs.get(name, 0) + out[0].numel() * k
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            def fc_hook(mod, inp, out, name=name):
                macs[name] = macs.get(name, 0) + out[0].numel() * mod.in_features
            hooks.append(m.register_forward_hook(fc_hook))
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return macs
