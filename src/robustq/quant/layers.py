"""Quantized Conv2d / Linear: fake-quantize the input activation and the weight, then compute.

``w_bits`` and ``a_bits`` can be changed in place (a search re-bits the same model without
rebuilding it); 32 means floating point. Biases stay in FP32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustq.quant.quantizers import Quantizer


class QuantLayer:
    """Mixin holding ``weight_quantizer`` and ``act_quantizer`` and their bit-widths."""

    weight_quantizer: Quantizer
    act_quantizer: Quantizer

    @property
    def w_bits(self) -> int:
        return self.weight_quantizer.bits

    @w_bits.setter
    def w_bits(self, bits: int) -> None:
        if bits != self.weight_quantizer.bits:
            self.weight_quantizer.bits = bits
            self.weight_quantizer.bits_changed()

    @property
    def a_bits(self) -> int:
        return self.act_quantizer.bits

    @a_bits.setter
    def a_bits(self, bits: int) -> None:
        if bits != self.act_quantizer.bits:
            self.act_quantizer.bits = bits
            self.act_quantizer.bits_changed()

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quantizer(self.weight)

    def attach(self, wq: Quantizer, aq: Quantizer) -> None:
        """Quantize the weight with ``wq`` (shaped to it) and the input with ``aq``."""
        self.weight_quantizer, self.act_quantizer = wq, aq
        wq.fit(self.weight)


class QuantConv2d(nn.Conv2d, QuantLayer):
    @classmethod
    def from_float(cls, conv: nn.Conv2d, wq: Quantizer, aq: Quantizer) -> QuantConv2d:
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
        q.load_state_dict(conv.state_dict())
        q.attach(wq, aq)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.act_quantizer(x), self.quantized_weight(), self.bias)


class QuantLinear(nn.Linear, QuantLayer):
    @classmethod
    def from_float(cls, fc: nn.Linear, wq: Quantizer, aq: Quantizer) -> QuantLinear:
        q = cls(fc.in_features, fc.out_features, fc.bias is not None)
        q.load_state_dict(fc.state_dict())
        q.attach(wq, aq)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.act_quantizer(x), self.quantized_weight(), self.bias)


def quantizable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv2d and Linear layers (quantized or not) by qualified name, in module order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
