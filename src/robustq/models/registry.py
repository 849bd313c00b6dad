"""Model registry: ``@register_model`` / ``get_model`` / ``list_models`` (timm-style)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from robustq.models.base import ImageClassifier
from robustq.utils.errors import RobustqError

_MODELS: dict[str, Callable[..., ImageClassifier]] = {}


def register_model(name: str) -> Callable:
    def deco(fn: Callable[..., ImageClassifier]) -> Callable[..., ImageClassifier]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_MODELS)


def get_model(name: str, num_classes: int = 10, in_channels: int = 3,
              mean: Sequence[float] | None = None, std: Sequence[float] | None = None
              ) -> ImageClassifier:
    """Build architecture ``name`` with normalization ``mean``/``std`` (default 0.5/0.5...)."""
    if name not in _MODELS:
        raise RobustqError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    if num_classes < 2:
        raise RobustqError(f"num_classes must be >= 2, got {num_classes}")
    mean = tuple(mean) if mean is not None else (0.5,) * in_channels
    std = tuple(std) if std is not None else (0.5,) * in_channels
    return _MODELS[name](num_classes=num_classes, in_channels=in_channels, mean=mean, std=std)
