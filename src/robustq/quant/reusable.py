"""``ReusableInference``: one compiled inference copy serving every quantized model of a layout.

A search samples hundreds of candidate policies of the same network. ``torch.compile`` of each
candidate's frozen copy (``quant.inference.freeze_quantized``) costs 20-30 s, as long as an
episode, because a frozen copy holds its grids as Python constants. Here the grids live in
tensors (``TensorGridQuantizer``), so a candidate is *loaded* into one compiled template (its
quantized weights, BatchNorm statistics and grids copied in place) and the compiled graph runs
it as is: one compilation per layout, batch shape and precision per process, not per
candidate. Which layers quantize their input is part of the layout; bit-widths and ranges are
not.

Guarantees. ``precision="fp32"``: the frozen copy's function (the same grids, the same
quantized weights), computed by the compiled graph, so equal to the eager frozen copy up to
float rounding (a value within rounding of a grid cell's boundary can land one level away; the
tests compare outputs). ``precision="bf16"``: convolutions and linear layers in bfloat16 under
autocast, each grid applied in float32 to the layer's input: *another* classifier, close to the
candidate; it suits a reward that ranks candidates, not a certificate of the fp32 model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from robustq.quant.inference import GridQuantizer, freeze_quantized
from robustq.utils.device import module_device, warn_if_emulated_bf16

PRECISIONS = ("fp32", "bf16")
_GRID_FIELDS = ("scale", "lo", "hi", "zero")


class TensorGridQuantizer(nn.Module):
    """``GridQuantizer`` with the grid in float32 buffers: the same values, but a compiled
    graph reads them as inputs, so loading another grid needs no recompilation. Computes in
    float32 whatever the input's dtype and returns float32."""

    def __init__(self, grid: GridQuantizer) -> None:
        super().__init__()
        for field in _GRID_FIELDS:
            self.register_buffer(field, torch.tensor(float(getattr(grid.grid, field))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return (torch.clamp(torch.round(x / self.scale + self.zero), self.lo, self.hi)
                - self.zero) * self.scale


def tensor_grid_copy(model: nn.Module) -> nn.Module:
    """The frozen inference copy of the quantized ``model`` with every grid in buffers."""
    frozen = freeze_quantized(model)
    for name, module in list(frozen.named_modules()):
        if isinstance(module, GridQuantizer):
            parent, _, child = name.rpartition(".")
            setattr(frozen.get_submodule(parent), child, TensorGridQuantizer(module))
    return frozen


def layout(model: nn.Module) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """What must match for two models to share a compiled template: state names and shapes."""
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


class _Autocast(nn.Module):
    """``inner`` with convolutions and linear layers in bfloat16 (autocast); float32 logits."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return self.inner(x).float()


class ReusableInference:
    """``engine(qmodel)``: a compiled callable computing ``qmodel``'s frozen copy (see the module
    docstring for what is preserved per precision). The callable is shared: it computes the
    model of the *latest* call, so use it before loading the next. Falls back to the eager
    template if compilation fails (e.g. no C++ compiler)."""

    def __init__(self, precision: str = "fp32", compile: bool = True) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision, self.compile = precision, compile
        self._templates: dict[tuple, tuple[nn.Module, Callable]] = {}

    def __call__(self, qmodel: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        # normal tensors even when called under inference_mode: a template made of inference
        # tensors could not be loaded again outside it
        with torch.inference_mode(False), torch.no_grad():
            candidate = tensor_grid_copy(qmodel)
            key = layout(candidate)
            if key not in self._templates:
                self._templates[key] = self._template(candidate)
            template, run = self._templates[key]
            template.load_state_dict(candidate.state_dict())      # in place: the same tensors
        return run

    def _template(self, candidate: nn.Module) -> tuple[nn.Module, Callable]:
        template = candidate.to(memory_format=torch.channels_last)
        warn_if_emulated_bf16(self.precision, module_device(template))
        net = _Autocast(template) if self.precision == "bf16" else template
        return template, (_CompiledOrEager(net) if self.compile else net)


class _CompiledOrEager(nn.Module):
    """``torch.compile(net)`` (static shapes), or ``net`` itself once compiling has failed (e.g.
    no C++ compiler): the compiler only fails at a call, so that call is retried eagerly. Pickles
    as ``net`` and compiles again where it is unpickled."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self._compile()

    def _compile(self) -> None:      # kept out of the module tree: parameters are net's
        self.__dict__["compiled"] = torch.compile(self.net, dynamic=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception:  # noqa: BLE001 - any compiler failure means: run eagerly
                self.__dict__["compiled"] = None
        return self.net(x)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "compiled"}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._compile()
