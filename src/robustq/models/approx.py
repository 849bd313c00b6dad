"""Cheap approximations f_p of a model f, for incremental certification: magnitude pruning and
reduced-precision (bfloat16) inference. Both return new modules; f is left untouched."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from robustq.utils.errors import RobustqError
from robustq.utils.registry import Registry


def magnitude_prune(model: nn.Module, fraction: float) -> nn.Module:
    """A copy with the smallest ``fraction`` of each Conv2d/Linear layer's weights set to zero."""
    if not 0 <= fraction < 1:
        raise RobustqError(f"prune fraction must lie in [0, 1), got {fraction}")
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        for m in pruned.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                w = m.weight
                k = int(fraction * w.numel())
                if k:
                    thresh = w.abs().flatten().kthvalue(k).values
                    w.mul_((w.abs() > thresh).to(w.dtype))
    return pruned


class LowPrecision(nn.Module):
    """Runs a copy of ``model`` in ``dtype`` (default bfloat16); inputs and logits stay float32."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.inner = copy.deepcopy(model).to(dtype)
        self.dtype = dtype
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(self.dtype)).float()


APPROXIMATIONS: Registry[Callable[[nn.Module, str | None], nn.Module]] = Registry("approximation")


@APPROXIMATIONS.register("bf16")
def _bf16(model: nn.Module, arg: str | None) -> nn.Module:
    if arg is not None:
        raise RobustqError(f"bf16 takes no argument, got 'bf16:{arg}'")
    return LowPrecision(model)


@APPROXIMATIONS.register("prune")
def _prune(model: nn.Module, arg: str | None) -> nn.Module:
    try:
        fraction = float(arg) if arg is not None else None
    except ValueError:
        fraction = None
    if fraction is None:
        raise RobustqError(f"prune needs a fraction, e.g. prune:0.3, got {arg!r}")
    return magnitude_prune(model, fraction)


def approximate(model: nn.Module, spec: str) -> nn.Module:
    """Build f_p from a spec ``NAME[:ARG]``: ``bf16`` or ``prune:FRACTION`` (e.g. ``prune:0.3``);
    the names are ``APPROXIMATIONS.names()``."""
    name, _, arg = spec.partition(":")
    return APPROXIMATIONS.get(name)(model, arg if _ else None)
