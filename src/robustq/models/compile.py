"""Inference-only compilation for the sampling-heavy loops (certification, benchmarks).

``freeze_for_inference`` traces the model with TorchScript on a channels_last example batch and
freezes it (folds BatchNorm into convolutions, inlines parameters). On this CPU that is ~1.7x
eager speed for ResNet-20; the result computes the same function (up to float rounding) but
is not trainable.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


def freeze_for_inference(model: nn.Module, example_shape: tuple[int, ...]) -> nn.Module:
    """A frozen TorchScript copy of ``model`` (eval mode) for inputs like ``example_shape``.

    The caller's model is not modified. Falls back to an eager channels_last copy if tracing
    fails, e.g. for modules with
    data-dependent Python control flow.
    """
    model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)  # leave the caller's
    example = torch.rand(example_shape).contiguous(memory_format=torch.channels_last)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example, check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            frozen(example)
        frozen.num_classes = getattr(model, "num_classes", None)
        return frozen
    except Exception:  # noqa: BLE001 - any tracing failure means: use eager
        return model
