"""Context managers for a module's state during one job: ``eval_mode`` (train/eval restored
afterwards, even on error) and ``forward_hooks`` (hooks removed afterwards)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torch import nn

Hook = Callable[[str, nn.Module, tuple, Any], None]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block; its previous mode restored on exit."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def forward_hooks(modules: Mapping[str, nn.Module], hook: Hook) -> Iterator[None]:
    """``hook(name, module, inputs, output)`` after every forward of each named module inside
    the block; every hook removed on exit."""
    handles = [m.register_forward_hook(
        lambda mod, inp, out, name=name: hook(name, mod, inp, out)) for name, m in modules.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
