"""``--device``: where models run and noise is drawn."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from robustq.utils.errors import RobustqError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; an
    unknown name or a CUDA device this machine lacks is refused with one clear line."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RobustqError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise RobustqError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise RobustqError(f"--device {name}: this machine has {count} CUDA device(s)")
    return device


def module_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter or buffer (the CPU for one without any)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions natively: on CUDA, what
    ``torch.cuda.is_bf16_supported`` says; on the CPU, oneDNN's check for AVX-512 BF16 or AMX.
    Without them oneDNN emulates bfloat16, which measured here about 10x *slower* than float32
    (ResNet-56 and MobileNetV2 training steps, AVX2-only EPYC; benchmarks/train_precision.py)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):      # a private oneDNN query: absent, assume not
        return False


def warn_if_emulated_bf16(precision: str, device: torch.device) -> None:
    """A warning (not an error: the results are the same, only slower) when ``precision`` is
    bf16 on a device without native bfloat16 (:func:`native_bf16`)."""
    if precision == "bf16" and not native_bf16(device):
        warnings.warn(f"precision bf16: this {device.type.upper()} has no native bfloat16, so "
                      "it is emulated, about 10x slower than fp32 here; use fp32 on this "
                      "machine", stacklevel=2)
