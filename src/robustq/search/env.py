"""The per-layer search environment (spec 03, after HAQ's "linear" environment).

An episode visits the quantizable layers in module order, two steps per layer: weight bits, then
input-activation bits. ``LayerTable`` holds each layer's static features and MACs; ``states``
gives the min-max normalized state of every step; ``action_to_bits`` maps an action in [0, 1]
to a bit-width so that every width in [b_min, b_max] gets an equal share of [0, 1];
``BitOpsBudget.enforce`` lowers bits (last layer first, activations before weights) until the
policy meets the budget, and refuses budgets no policy in [b_min, b_max] can meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from robustq.models.flops import layer_macs
from robustq.quant.layers import quantizable_layers
from robustq.quant.policy import FP, LayerBits, Policy
from robustq.utils.errors import RobustqError
from robustq.utils.modes import eval_mode, forward_hooks

FEATURES = ("index", "depthwise", "in_channels", "out_channels", "stride", "kernel", "weights",
            "in_area", "is_activation", "previous_action", "macs")


@dataclass(frozen=True)
class LayerInfo:
    name: str
    depthwise: bool
    in_channels: int
    out_channels: int
    stride: int
    kernel: int
    weights: int
    in_area: int
    macs: int


class LayerTable:
    """Static description of a model's quantizable layers, in module order."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int]) -> None:
        macs = layer_macs(model, input_shape)
        areas = _input_areas(model, input_shape)
        self.layers: list[LayerInfo] = []
        for name, m in quantizable_layers(model).items():
            conv = isinstance(m, nn.Conv2d)
            self.layers.append(LayerInfo(
                name=name, depthwise=conv and m.groups > 1 and m.groups == m.in_channels,
                in_channels=m.in_channels if conv else m.in_features,
                out_channels=m.out_channels if conv else m.out_features,
                stride=m.stride[0] if conv else 0, kernel=m.kernel_size[0] if conv else 1,
                weights=m.weight.numel(), in_area=areas[name], macs=macs[name]))
        if not self.layers:
            raise RobustqError("the model has no quantizable (Conv2d/Linear) layers")
        self.macs = np.array([la.macs for la in self.layers], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def names(self) -> list[str]:
        return [la.name for la in self.layers]

    def bitops_percent(self, w: np.ndarray, a: np.ndarray) -> float:
        """BitOPs of per-layer bits (w, a) as % of FP32 (32 x 32 per MAC)."""
        return float(100.0 * (self.macs * w * a).sum() / (self.macs.sum() * FP * FP))

    def widest_uniform(self, budget: float, b_min: int = 2, b_max: int = 8) -> int:
        """The most bits b in [b_min, b_max] with every layer at b/b within ``budget`` (% of
        FP32 BitOPs); b_min where none fits."""
        k = len(self)
        fits = [b for b in range(b_min, b_max + 1)
                if self.bitops_percent(np.full(k, b), np.full(k, b)) <= budget + 1e-12]
        return max(fits, default=b_min)

    def states(self) -> np.ndarray:
        """Static state rows ``(2 * layers, len(FEATURES))``, min-max normalized per feature;
        the ``previous_action`` column (index 9) is filled in during the episode."""
        rows = []
        for i, la in enumerate(self.layers):
            for is_act in (0.0, 1.0):
                rows.append([i, la.depthwise, la.in_channels, la.out_channels, la.stride,
                             la.kernel, la.weights, la.in_area, is_act, 0.0, la.macs])
        s = np.asarray(rows, dtype=np.float64)
        lo, hi = s.min(0), s.max(0)
        return ((s - lo) / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)

    def policy(self, w: np.ndarray, a: np.ndarray) -> Policy:
        return Policy({n: LayerBits(int(wb), int(ab)) for n, wb, ab in zip(self.names, w, a,
                                                                          strict=True)})


def _input_areas(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, int]:
    import torch

    areas: dict[str, int] = {}

    def area(name: str, mod: nn.Module, inp: tuple, out: Any) -> None:
        areas[name] = int(np.prod(inp[0].shape[2:])) if inp[0].ndim == 4 else 1

    with forward_hooks(quantizable_layers(model), area), eval_mode(model), torch.no_grad():
        model(torch.zeros(1, *input_shape))
    return areas


def action_to_bits(action: float, b_min: int = 2, b_max: int = 8) -> int:
    """HAQ's linear mapping: round(a (b_max - b_min + 1) + b_min - 0.5), clipped; each of the
    b_max - b_min + 1 widths owns an interval of length 1 / (b_max - b_min + 1) of [0, 1]."""
    if not 0.0 <= action <= 1.0:
        raise RobustqError(f"actions must lie in [0, 1], got {action}")
    b = int(np.floor(action * (b_max - b_min + 1) + b_min))      # round(x - 0.5) = floor(x)
    return int(np.clip(b, b_min, b_max))


@dataclass(frozen=True)
class BitOpsBudget:
    """A BitOPs budget in % of the FP32 model (uniform 4/4 = 1.5625%)."""

    percent: float
    b_min: int = 2
    b_max: int = 8

    def check(self, table: LayerTable) -> None:
        floor = table.bitops_percent(np.full(len(table), self.b_min), np.full(len(table),
                                                                             self.b_min))
        if not self.percent > 0 or self.percent < floor - 1e-12:
            raise RobustqError(f"BitOPs budget {self.percent}% cannot be met: even all layers at "
                               f"{self.b_min}/{self.b_min} bits cost {floor:.4f}%")

    def enforce(self, table: LayerTable, w: np.ndarray, a: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Lower bits, sweeping from the last layer to the first (activation bits, then weight
        bits, one bit per visit), until the policy meets the budget; returns new arrays."""
        self.check(table)
        w, a = np.array(w, dtype=np.int64), np.array(a, dtype=np.int64)
        while table.bitops_percent(w, a) > self.percent + 1e-12:
            for i in reversed(range(len(table))):
                for bits in (a, w):
                    if bits[i] > self.b_min:
                        bits[i] -= 1
                        if table.bitops_percent(w, a) <= self.percent + 1e-12:
                            return w, a
        return w, a
