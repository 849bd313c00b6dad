"""The kernels fake quantization trains on: eager PyTorch ops, or fused ones compiled by Inductor.

Under autograd an LSQ quantizer is half of a QAT step on this CPU (profile of ResNet-20 4/4:
division, clamp, round, the straight-through estimator's subtraction and addition, and twice as
many element-wise passes in the backward, each over the whole activation). ``torch.compile`` of
the quantizer's formula alone (not of the model, whose quantizers branch in Python) fuses the
forward into one pass and the backward into one or two, for every layer and bit-width: one
compilation per process with dynamic shapes and the clamp bounds passed as tensors. The forward
is bit for bit the eager one; gradients agree up to the order of float additions in the step's
reduction (docs/benchmarks.md: "Fused LSQ kernels").

Opt-in per run (``QuantizeJob.quant_kernels``, ``robustq quantize --quant-kernels compiled``);
inference and certification never use it (they run frozen copies). Where compilation fails (no
C++ compiler, an unsupported build) the eager formula is used for the rest of the process.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch

from robustq.utils.errors import RobustqError

KERNELS = ("eager", "compiled")
_ACTIVE: ContextVar[str] = ContextVar("robustq_quant_kernels", default="eager")


def check_kernels(kind: str, name: str = "quant_kernels") -> str:
    if kind not in KERNELS:
        raise RobustqError(f"{name} must be one of {', '.join(KERNELS)}, got {kind!r}")
    return kind


@contextmanager
def quant_kernels(kind: str) -> Iterator[None]:
    """Within the block (this thread or task), quantizers that have a fused kernel train on
    ``kind``'s: "eager" or "compiled"."""
    token = _ACTIVE.set(check_kernels(kind))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _lsq_forward(v: torch.Tensor, s: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
                 ) -> torch.Tensor:
    """round(clamp(v / s, lo, hi)) * s: LSQ's fake quantization, bit for bit the eager
    ``round_ste(clamp(v / s, lo, hi)) * s`` (x + (round(x) - x) == round(x) in floating point)."""
    return torch.round(torch.clamp(v / s, lo, hi)) * s


def _lsq_backward(g: torch.Tensor, v: torch.Tensor, s: torch.Tensor, lo: torch.Tensor,
                  hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of v and s that autograd derives from the eager expression, term by term:
    the straight-through round, clamp's mask (bounds included), the product and the quotient."""
    vs = v / s
    inside = (vs >= lo) & (vs <= hi)
    g_x = torch.where(inside, g * s, 0.0)
    grad_v = g_x / s
    grad_s = (g * torch.round(torch.clamp(vs, lo, hi))).sum() - (g_x * v / (s * s)).sum()
    return grad_v, grad_s


class _Compiled:
    """``fn`` compiled once per process (dynamic shapes); after a compiler failure, ``fn``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.compiled, self.failed = fn, None, False

    def __call__(self, *args: torch.Tensor) -> Any:
        if self.failed:
            return self.fn(*args)
        if self.compiled is None:
            self.compiled = torch.compile(self.fn, dynamic=True)
        try:
            return self.compiled(*args)
        except Exception as e:  # noqa: BLE001 - any compiler failure: the eager formula is exact
            self.failed = True
            warnings.warn(f"fused quantizer kernels unavailable ({type(e).__name__}); "
                          "training on eager ones", RuntimeWarning, stacklevel=2)
            return self.fn(*args)


_FORWARD, _BACKWARD = _Compiled(_lsq_forward), _Compiled(_lsq_backward)


class _FusedLSQ(torch.autograd.Function):
    """The compiled forward and backward on plain 1-D tensors: detached, so no view or
    Parameter reaches the compiler (either would make it guard on the layer's shape)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, s: torch.Tensor, lo: torch.Tensor,  # noqa: ANN001
                hi: torch.Tensor) -> torch.Tensor:
        v, s = v.detach(), s.detach()
        ctx.save_for_backward(v, s, lo, hi)
        return _FORWARD(v, s, lo, hi)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:  # noqa: ANN001
        v, s, lo, hi = ctx.saved_tensors
        grad_v, grad_s = _BACKWARD(g.detach().contiguous(), v, s, lo, hi)
        return grad_v, grad_s, None, None


def _flat(v: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]] | None:
    """``v`` as a 1-D view in memory order (contiguous or channels_last; no copy) and the map
    from a result of that shape back to ``v``'s shape and strides; None for other layouts. One
    rank and one type (a plain tensor, not a Parameter) for every layer: one compilation."""
    if v.is_contiguous():
        return v.view(-1), lambda out: out.view(v.shape)
    if v.ndim == 4 and v.is_contiguous(memory_format=torch.channels_last):
        nhwc = v.permute(0, 2, 3, 1)
        return nhwc.reshape(-1), lambda out: out.view(nhwc.shape).permute(0, 3, 1, 2)
    return None


def fused_lsq(v: torch.Tensor, s: torch.Tensor, lo: float, hi: float) -> torch.Tensor | None:
    """LSQ's fake quantization of ``v`` with a scalar step ``s`` on integer levels [lo, hi]
    through the compiled kernel, when "compiled" kernels are active and autograd is recording;
    ``None`` otherwise (per-channel steps, other layouts: the caller computes it eagerly)."""
    if _ACTIVE.get() != "compiled" or not torch.is_grad_enabled() or s.numel() != 1:
        return None
    flat = _flat(v)
    if flat is None:
        return None
    out = _FusedLSQ.apply(flat[0], s.reshape(()), torch.tensor(float(lo)),
                          torch.tensor(float(hi)))
    return flat[1](out)
