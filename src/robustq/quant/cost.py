"""Cost model: MACs, BitOPs (MACs x b_w x b_a) and weight size of a model under a policy."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from robustq.models.flops import layer_macs
from robustq.quant.layers import quantizable_layers
from robustq.quant.policy import FP, Policy


@dataclass(frozen=True)
class LayerCost:
    name: str
    macs: int
    w_bits: int
    a_bits: int
    bitops: int
    weights: int          # weight elements
    weight_bits: int      # weights x w_bits


@dataclass(frozen=True)
class ModelCost:
    layers: tuple[LayerCost, ...]
    macs: int
    bitops: int
    fp32_bitops: int
    weight_bits: int
    fp32_params: int      # biases, BatchNorm and other parameters/buffers kept in FP32

    @property
    def bitops_percent(self) -> float:
        """BitOPs as % of the FP32 model (32 x 32 per MAC); uniform 4/4 is 1.5625%."""
        return 100.0 * self.bitops / self.fp32_bitops

    @property
    def weight_bytes(self) -> float:
        return self.weight_bits / 8

    @property
    def size_bytes(self) -> float:
        """Quantized weights plus FP32 biases and BN parameters."""
        return self.weight_bytes + 4 * self.fp32_params

    def to_json(self) -> dict[str, Any]:
        return {"layers": [asdict(layer) for layer in self.layers], "macs": self.macs,
                "bitops": self.bitops, "fp32_bitops": self.fp32_bitops,
                "bitops_percent": self.bitops_percent, "weight_bits": self.weight_bits,
                "weight_bytes": self.weight_bytes, "fp32_params": self.fp32_params,
                "size_bytes": self.size_bytes}


def model_cost(model: nn.Module, policy: Policy, input_shape: tuple[int, int, int]) -> ModelCost:
    """Cost of ``model`` (FP or quantized) under ``policy`` for one input of ``input_shape``."""
    policy = policy.validate(model)
    macs = layer_macs(model, input_shape)
    layers = []
    for name, layer in quantizable_layers(model).items():
        b = policy[name]
        n_w = layer.weight.numel()
        layers.append(LayerCost(name, macs[name], b.w, b.a, macs[name] * b.w * b.a, n_w,
                                n_w * b.w))
    weight_ids = {id(m.weight) for m in quantizable_layers(model).values()}
    fp32 = sum(p.numel() for n, p in model.named_parameters()
               if id(p) not in weight_ids and "quantizer." not in n)
    total_macs = sum(c.macs for c in layers)
    return ModelCost(tuple(layers), total_macs, sum(c.bitops for c in layers),
                     total_macs * FP * FP, sum(c.weight_bits for c in layers), fp32)
