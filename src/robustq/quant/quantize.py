"""``quantize(model, policy, method)``: a fake-quantized copy of a model, ready to calibrate,
fine-tune, certify or attack (straight-through gradients everywhere)."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from robustq.quant.layers import QuantConv2d, QuantLayer, QuantLinear, quantizable_layers
from robustq.quant.policy import LayerBits, Policy
from robustq.quant.quantizers import get_quantizers
from robustq.utils.device import module_device
from robustq.utils.modes import eval_mode


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def quantize(model: nn.Module, policy: Policy, method: str = "minmax",
             calibration: Iterable[torch.Tensor] | torch.Tensor | None = None,
             per_channel: bool = False) -> nn.Module:
    """A copy of ``model`` whose Conv2d/Linear layers fake-quantize weights and input activations
    as ``policy`` says, with ``method``'s quantizers (``minmax``, ``dorefa``, ``pact``, ``lsq``).

    ``calibration`` (a batch or an iterable of [0, 1] image batches) sets activation ranges and
    signs and LSQ/PACT initial values; it is needed for ``minmax`` and recommended for all.
    The original model is left untouched.
    """
    policy = policy.validate(model)
    qmodel = copy.deepcopy(model)
    for name, layer in quantizable_layers(qmodel).items():
        wq, aq = get_quantizers(method)
        if per_channel and hasattr(wq, "per_channel"):
            wq.per_channel = True
        cls = QuantConv2d if isinstance(layer, nn.Conv2d) else QuantLinear
        q = cls.from_float(layer, wq, aq)
        q.w_bits, q.a_bits = policy[name].w, policy[name].a
        _set_submodule(qmodel, name, q)
    qmodel.quant_method = method
    if calibration is not None:
        calibrate(qmodel, calibration)
    return qmodel


@torch.no_grad()
def calibrate(qmodel: nn.Module, batches: Iterable[torch.Tensor] | torch.Tensor) -> None:
    """Run calibration batches through ``qmodel`` in eval mode, recording activation ranges."""
    quantizers = [q for m in qmodel.modules() if isinstance(m, QuantLayer)
                  for q in (m.weight_quantizer, m.act_quantizer)]
    for q in quantizers:
        q.calibrating = True
    try:
        device = module_device(qmodel)
        with eval_mode(qmodel):
            for x in [batches] if isinstance(batches, torch.Tensor) else batches:
                qmodel(x.to(device))
    finally:
        for q in quantizers:
            q.calibrating = False


def get_policy(qmodel: nn.Module) -> Policy:
    """The bit-widths a quantized model currently uses."""
    return Policy({n: LayerBits(m.w_bits, m.a_bits) for n, m in qmodel.named_modules()
                   if isinstance(m, QuantLayer)})


def set_policy(qmodel: nn.Module, policy: Policy) -> None:
    """Re-bit a quantized model in place (no rebuild)."""
    layers = {n: m for n, m in qmodel.named_modules() if isinstance(m, QuantLayer)}
    policy = policy.validate(qmodel)
    for name, b in policy.items():
        layers[name].w_bits, layers[name].a_bits = b.w, b.a
