"""Multiply-accumulates per layer from real shapes, measured with one dummy forward pass."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robustq.utils.modes import eval_mode, forward_hooks


@torch.no_grad()
def layer_macs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """MACs of each Conv2d and Linear layer (by qualified name) for ONE input of ``input_shape``.

    ``input_shape`` is ``(C, H, W)``. A conv's MACs are ``out_elements * (C_in / groups) * k_h *
    k_w``; a linear layer's are ``in_features * out_features``. Biases, BN, pooling and
    activations are not counted (negligible, and not multiplies of quantized operands).
    """
    macs: dict[str, int] = {}

    def count(name: str, mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        per_output = (mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                      if isinstance(mod, nn.Conv2d) else mod.in_features)
        macs[name] = macs.get(name, 0) + out[0].numel() * per_output

    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    with forward_hooks(layers, count), eval_mode(model):
        model(torch.zeros(1, *input_shape))
    return macs
