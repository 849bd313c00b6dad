"""``--device``: where models run and noise is drawn."""

from __future__ import annotations

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
