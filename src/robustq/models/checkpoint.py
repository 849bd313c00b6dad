"""Checkpoints: safetensors weights plus a JSON metadata record (never pickle).

The metadata holds everything needed to rebuild the model and to trust the result:
architecture, classes, normalization, sigma, epochs, accuracy, seed, git commit, versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from robustq.models.base import ImageClassifier, set_activation_bound
from robustq.models.registry import get_model
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write

META_KEY = "robustq"


def _is_int(v: object, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


@dataclass
class ModelCard:
    """How to rebuild a model: the registry name and its constructor arguments."""

    arch: str
    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] = ()
    input_size: tuple[int, int] = (32, 32)
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self) -> ImageClassifier:
        model = get_model(self.arch, self.num_classes, self.in_channels, self.mean, self.std)
        if "act_bound" in self.extra:       # bounded ReLU (Defensive Quantization)
            set_activation_bound(model, self.extra["act_bound"])
        return model

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.update(mean=list(self.mean), std=list(self.std), classes=list(self.classes),
                 input_size=list(self.input_size))
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelCard:
        """A card from a checkpoint's metadata, checked; keys this version does not know are
        ignored (unlike run configs), so a checkpoint written by a newer robustq still loads."""
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("mean", "std", "classes", "input_size"):
            if k in known:
                known[k] = tuple(known[k])
        card = cls(**known)
        card.check()
        return card

    def check(self) -> None:
        """Types and sizes of every field (a card read from a file is untrusted input)."""
        ok = (isinstance(self.arch, str) and _is_int(self.num_classes, 1)
              and _is_int(self.in_channels, 1) and isinstance(self.extra, dict)
              and len(self.mean) == len(self.std) == self.in_channels
              and all(isinstance(v, int | float) and not isinstance(v, bool)
                      for v in (*self.mean, *self.std)) and min(self.std) > 0
              and len(self.input_size) == 2 and all(_is_int(v, 1) for v in self.input_size))
        if not ok:
            raise ValueError("expected arch (text), num_classes and in_channels (>= 1), mean and "
                             "std (in_channels numbers, std > 0), input_size (2 sizes)")


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write tensors + JSON metadata atomically as one safetensors file."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    text = json.dumps(meta, default=str)
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata={META_KEY: text}))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """A checkpoint's robustq metadata alone (the header; no tensor is read), validated."""
    path = Path(path)
    if not path.is_file():
        raise RobustqError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise RobustqError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    return _parse_metadata(path, raw)


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise RobustqError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    check_finite_tensors(path, tensors)
    return tensors, meta


def _parse_metadata(path: Path, raw: str | None) -> dict[str, Any]:
    if raw is None:
        raise RobustqError(f"{path}: safetensors file has no robustq metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise RobustqError(f"{path}: robustq metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise RobustqError(f"{path}: robustq metadata must be a JSON object, got "
                           f"{type(meta).__name__}")
    return meta


def check_finite_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse a checkpoint with NaN or infinite values, naming the first such tensor: such a
    network's certificates and accuracies would be meaningless."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise RobustqError(f"{path}: tensor {name!r} holds {bad} non-finite value(s) "
                               "(NaN or inf); refusing to load it")


def card_from_meta(path: str | Path, meta: dict[str, Any]) -> ModelCard:
    """The model card recorded in a checkpoint's metadata, validated (naming the file)."""
    card = meta.get("card")
    if not isinstance(card, dict):
        raise RobustqError(f"{path}: checkpoint metadata has no model card (a JSON object), got "
                           f"{type(card).__name__}")
    try:
        return ModelCard.from_json(card)
    except (TypeError, ValueError, KeyError) as e:
        raise RobustqError(f"{path}: invalid model card ({e})") from None


def save_checkpoint(path: str | Path, model: torch.nn.Module, card: ModelCard,
                    meta: dict[str, Any] | None = None) -> Path:
    """Save ``model``'s state dict with its card and any further metadata (accuracy, seed, ...)."""
    return save_tensors(path, model.state_dict(), {"card": card.to_json(), **(meta or {})})


def load_checkpoint(path: str | Path) -> tuple[ImageClassifier, dict[str, Any]]:
    """Rebuild the FP model saved at ``path`` (eval mode) and return it with its metadata.
    ``robustq.load`` reads quantized checkpoints and exported ONNX files too."""
    tensors, meta = load_tensors(path)
    if "quant" in meta:
        raise RobustqError(f"{path}: a quantized checkpoint; load it with robustq.load(path) "
                           "(or robustq.quant.checkpoint.load_model)")
    model = build_from_card(path, card_from_meta(path, meta))
    if "history" in meta and any(k.startswith("model.") for k in tensors):
        # a training state (weights + optimizer): its weights are the model's so far
        tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        meta = {**meta, "sigma": meta["config"]["sigma"], "partial_training": True}
    missing, unexpected = load_weights(model, tensors)
    if missing or unexpected:
        raise RobustqError(f"{path}: weights do not fit {meta['card']['arch']}: "
                           f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} "
                           f"unexpected (e.g. {unexpected[:2]})")
    return model.eval(), meta


def build_from_card(path: str | Path, card: ModelCard) -> ImageClassifier:
    """``card.build()``, with an unknown architecture or bad arguments named after ``path``."""
    try:
        return card.build()
    except RobustqError as e:
        raise RobustqError(f"{path}: {e}") from None
    except (TypeError, ValueError) as e:
        raise RobustqError(f"{path}: cannot build {card.arch!r} from its card ({e})") from None


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor]
                 ) -> tuple[list[str], list[str]]:
    """Copy matching tensors into ``model``; return (missing, unexpected) key lists."""
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    if not missing and not unexpected:
        bad = [k for k in own if own[k].shape != tensors[k].shape]
        if bad:
            return bad, []
        model.load_state_dict(tensors)
    return missing, unexpected
