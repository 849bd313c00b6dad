"""``freeze_quantized(qmodel)``: an inference-only copy of a fake-quantized model.

A fake-quantized layer recomputes its quantized weight and runs its activation quantizer's
Python logic (calibration flags, bit checks, several tensor passes) on every forward: ~0.55x the
FP model's speed here. Frozen, each quantized layer becomes a plain ``Conv2d``/``Linear`` that
holds its already-quantized weight, behind a ``GridQuantizer`` with constant Python-float
parameters. The result is plain tensor operations, which ``torch.compile`` fuses into the
convolutions' neighbours (``robustq.models.compile.compile_for_inference``): ~1.9x the eager
fake-quantized model for ResNet-20 with LSQ 4/4 (benchmarks/quant_overhead.py).

Guarantee: the frozen model computes the same quantized function, with the same weights and
the same grids; run eagerly it gives the same outputs bit for bit (tested for every method).
Traced or compiled, floating-point rounding may differ (folded BatchNorm, fused kernels), and
a value within rounding error of a grid cell's boundary can then land one level away:
predictions agree on all but a tiny fraction of inputs (tested).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from robustq.quant.layers import QuantConv2d, QuantLayer, QuantLinear
from robustq.quant.quantizers import FP_BITS, Grid


class GridQuantizer(nn.Module):
    """Round to a fixed ``Grid`` (inference only, no gradient trickery)."""

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grid.apply(x)

    def extra_repr(self) -> str:
        g = self.grid
        return f"scale={g.scale:.4g}, lo={g.lo}, hi={g.hi}, zero={g.zero}"


class FrozenQuantLayer(nn.Module):
    """``layer(act(x))`` with ``layer`` a plain Conv2d/Linear holding the quantized weight."""

    def __init__(self, act: nn.Module, layer: nn.Module) -> None:
        super().__init__()
        self.act, self.layer = act, layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.act(x))


@torch.no_grad()
def _freeze_layer(q: QuantLayer) -> FrozenQuantLayer:
    if isinstance(q, QuantConv2d):
        plain: nn.Module = nn.Conv2d(q.in_channels, q.out_channels, q.kernel_size, q.stride,
                                     q.padding, q.dilation, q.groups, q.bias is not None,
                                     q.padding_mode)
    elif isinstance(q, QuantLinear):
        plain = nn.Linear(q.in_features, q.out_features, q.bias is not None)
    else:
        raise TypeError(f"cannot freeze {type(q).__name__}")
    plain.weight.copy_(q.quantized_weight())
    if q.bias is not None:
        plain.bias.copy_(q.bias)
    act = (nn.Identity() if q.act_quantizer.bits >= FP_BITS
           else GridQuantizer(q.act_quantizer.grid()))
    return FrozenQuantLayer(act, plain).eval()


def freeze_quantized(model: nn.Module) -> nn.Module:
    """An eval-mode, inference-only copy of ``model`` with every quantized layer frozen
    (see the module docstring for what is preserved). The caller's model is untouched; a
    model without quantized layers comes back as an eval-mode copy. Not trainable: gradients
    through the frozen quantizers are those of ``round`` (zero)."""
    frozen = copy.deepcopy(model).eval()
    for name, module in list(frozen.named_modules()):
        if isinstance(module, QuantLayer):
            parent, _, child = name.rpartition(".")
            setattr(frozen.get_submodule(parent) if parent else frozen, child,
                    _freeze_layer(module))
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen
