"""What every robustq model shares: normalization as its first layer, so inputs are [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; ``x`` in [0, 1] pixel units, shape ``(N, C, H, W)``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"mean {mean} and std {std} must have equal length, std > 0")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ImageClassifier(nn.Module):
    """Base class: ``forward(x)`` takes [0, 1] images and returns logits ``(N, num_classes)``.

    Subclasses build their layers after calling ``super().__init__`` and implement
    ``forward_normalized``. Layer names are those of the architecture (``conv1``, ``layer1.0.conv1``,
    ``fc``), never prefixed by a wrapper, so quantization policies read naturally.
    """

    def __init__(self, num_classes: int, in_channels: int, mean: Sequence[float],
                 std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != in_channels:
            raise ValueError(f"{len(mean)} normalization channels for {in_channels} input channels")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.normalize = Normalize(mean, std)
        self.act_bound: float | None = None

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_normalized(self.normalize(x))


def relu(x: torch.Tensor, bound: float | None = None) -> torch.Tensor:
    """ReLU, or the bounded ReLU min(max(x, 0), bound) (ReLU6 for bound 6) that Defensive
    Quantization pairs with activation quantization (a known, fixed activation range)."""
    return F.relu(x) if bound is None else F.hardtanh(x, 0.0, bound)


def set_activation_bound(model: nn.Module, bound: float | None) -> nn.Module:
    """Bound every ReLU of a robustq model at ``bound`` (None: plain ReLU); in place."""
    if bound is not None and not bound > 0:
        raise ValueError(f"activation bound must be > 0, got {bound}")
    found = False
    for m in model.modules():
        if hasattr(m, "act_bound"):
            m.act_bound = bound
            found = True
    if not found and bound is not None:
        raise ValueError(f"{type(model).__name__} has no boundable activations")
    return model
