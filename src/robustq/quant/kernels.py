"""The kernels fake quantization trains on: eager PyTorch ops, or fused ones compiled by Inductor.

Under autograd a fake quantizer is half of a QAT step on this CPU (profile of ResNet-20 LSQ 4/4:
division, clamp, round, the straight-through estimator's subtraction and addition, and twice as
many element-wise passes in the backward, each over the whole activation). ``torch.compile`` of
the quantizer's formula alone (not of the model, whose quantizers branch in Python) fuses the
forward into one pass and the backward into one or two. Each formula runs inside a custom
autograd function on a detached 1-D view in memory order, so one compilation serves every layer,
shape and bit-width. Covered: LSQ with a scalar step, the fixed grids (min-max and DoReFa
activations: ``Grid.apply``) and PACT. The forward is bit for bit the eager one; the backward
computes autograd's terms in the same order (learned parameters' gradients are sums, so they may
differ by float reassociation). Docs: docs/benchmarks.md, "Fused LSQ kernels".

Opt-in per run (``QuantizeJob.quant_kernels``, ``robustq quantize --quant-kernels compiled``);
inference and certification never use it (no autograd). Where compilation fails (no C++
compiler, an unsupported build) the eager formulas are used for the rest of the process.
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


def _grid_forward(x: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                  zero: torch.Tensor) -> torch.Tensor:
    """``Grid.apply``: (clamp(round(x / scale + zero), lo, hi) - zero) * scale."""
    return (torch.clamp(torch.round(x / scale + zero), lo, hi) - zero) * scale


def _grid_backward(g: torch.Tensor, x: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor,
                   hi: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """Its straight-through gradient: clamp's mask on the rounded value (bounds included)."""
    r = torch.round(x / scale + zero)
    return torch.where((r >= lo) & (r <= hi), g * scale, 0.0) / scale


def _pact_forward(x: torch.Tensor, alpha: torch.Tensor, lo: torch.Tensor,
                  levels: torch.Tensor) -> torch.Tensor:
    """PACT: round(clip(x, lo, alpha) / (alpha / levels)) (alpha / levels), lo = 0 or -alpha."""
    scale = alpha / levels
    return torch.round(torch.minimum(torch.maximum(x, lo), alpha) / scale) * scale


def _pact_backward(g: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, lo: torch.Tensor,
                   signed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PACT's gradients: 1 for x inside (lo, alpha); for alpha, +1 where x >= alpha and, when
    ``signed`` (lo = -alpha), -1 where x <= -alpha."""
    upper, lower = x >= alpha, x <= lo
    inside = ~upper & torch.where(signed, ~lower, x >= 0)
    g_alpha = (g * upper).sum() - torch.where(signed, (g * lower).sum(), 0.0)
    return g * inside, g_alpha


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
_GRID_FORWARD, _GRID_BACKWARD = _Compiled(_grid_forward), _Compiled(_grid_backward)
_PACT_FORWARD, _PACT_BACKWARD = _Compiled(_pact_forward), _Compiled(_pact_backward)


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


class _FusedGrid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, *grid: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        x = x.detach()
        ctx.save_for_backward(x, *grid)
        return _GRID_FORWARD(x, *grid)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: ANN001
        x, *grid = ctx.saved_tensors
        return (_GRID_BACKWARD(g.detach().contiguous(), x, *grid), None, None, None, None)


class _FusedPACT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor, lo: torch.Tensor,  # noqa: ANN001
                levels: torch.Tensor, signed: torch.Tensor) -> torch.Tensor:
        x, alpha, lo = x.detach(), alpha.detach(), lo.detach()
        ctx.save_for_backward(x, alpha, lo, signed)
        return _PACT_FORWARD(x, alpha, lo, levels)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: ANN001
        x, alpha, lo, signed = ctx.saved_tensors
        grad_x, g_alpha = _PACT_BACKWARD(g.detach().contiguous(), x, alpha, lo, signed)
        return grad_x, g_alpha, None, None, None


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


def _on_flat(v: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """``fn`` of ``v``'s 1-D view, shaped back, when compiled kernels are active, autograd is
    recording and ``v``'s layout flattens without a copy; otherwise None (compute it eagerly)."""
    if not torch.is_grad_enabled() or _ACTIVE.get() != "compiled":   # inference: no lookup
        return None
    flat = _flat(v)
    return None if flat is None else flat[1](fn(flat[0]))


def _scalar(value: float) -> torch.Tensor:
    return torch.tensor(float(value))


def fused_lsq(v: torch.Tensor, s: torch.Tensor, lo: float, hi: float) -> torch.Tensor | None:
    """LSQ's fake quantization of ``v`` with a scalar step ``s`` on integer levels [lo, hi]
    through the compiled kernels, or None (not active, a per-channel step: compute it eagerly)."""
    if s.numel() != 1:
        return None
    return _on_flat(v, lambda flat: _FusedLSQ.apply(flat, s.reshape(()), _scalar(lo),
                                                    _scalar(hi)))


def fused_grid(x: torch.Tensor, scale: float, lo: float, hi: float,
               zero: float) -> torch.Tensor | None:
    """``Grid(scale, lo, hi, zero).apply(x)`` through the compiled kernels, or None."""
    return _on_flat(x, lambda flat: _FusedGrid.apply(flat, *map(_scalar, (scale, lo, hi, zero))))


def fused_pact(x: torch.Tensor, alpha: torch.Tensor, levels: int,
               signed: bool) -> torch.Tensor | None:
    """PACT's fake quantization of ``x`` (clip at ``alpha``, and at -alpha when ``signed``)
    through the compiled kernels, or None."""
    def fused(flat: torch.Tensor) -> torch.Tensor:      # built only when the kernels run
        a = alpha.reshape(())
        lo = -a if signed else torch.zeros(())
        return _FusedPACT.apply(flat, a, lo, _scalar(levels), torch.tensor(bool(signed)))

    return _on_flat(x, fused)
