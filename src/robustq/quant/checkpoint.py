"""Quantized checkpoints: weights, learned quantizer parameters, the policy and the method, in
one safetensors file; ``load_model`` reads FP and quantized checkpoints alike, and ``load`` says
what it read (``LoadedModel``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from robustq.models.checkpoint import (
    ModelCard,
    build_from_card,
    card_from_meta,
    load_checkpoint,
    load_tensors,
    load_weights,
    save_checkpoint,
)
from robustq.quant.cost import model_cost
from robustq.quant.policy import FP, Policy, uniform_policy
from robustq.quant.quantize import get_policy, quantize
from robustq.utils.errors import RobustqError
from robustq.utils.io import file_sha256


def save_quantized(path: str | Path, qmodel: nn.Module, card: ModelCard,
                   meta: dict[str, Any] | None = None) -> Path:
    quant = {"method": qmodel.quant_method, "policy": get_policy(qmodel).to_json()}
    return save_checkpoint(path, qmodel, card, {**(meta or {}), "quant": quant})


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a robustq checkpoint, FP or quantized, in eval mode, with its metadata; an exported
    ``.onnx`` file loads as the deployed classifier (``models.onnx_runtime``)."""
    if Path(path).suffix == ".onnx":
        from robustq.models.onnx_runtime import load_onnx

        return load_onnx(path)
    tensors, meta = load_tensors(path)
    if "quant" not in meta:
        return load_checkpoint(path)
    card = card_from_meta(path, meta)
    quant = meta["quant"]
    if not isinstance(quant, dict) or not {"policy", "method"} <= set(quant):
        raise RobustqError(f"{path}: 'quant' metadata must be an object with policy and method")
    try:
        qmodel = quantize(build_from_card(path, card), Policy.from_json(quant["policy"]),
                          quant["method"])
    except RobustqError as e:
        raise RobustqError(f"{path}: {e}") from None
    missing, unexpected = load_weights(qmodel, tensors)
    if missing or unexpected:
        raise RobustqError(f"{path}: quantized weights do not fit {card.arch}: {len(missing)} "
                           f"missing, {len(unexpected)} unexpected")
    return qmodel.eval(), meta


@dataclass(frozen=True)
class LoadedModel:
    """A loaded classifier and what it is: ``model`` maps [0, 1] images (N, C, H, W) to logits,
    in eval mode; ``sigma`` is the training noise (pixel units in [0, 1]) or None; ``method``
    and ``policy`` are None for an FP model; ``deployed`` for an exported ONNX file; ``path``
    is resolved and ``sha256`` is the file's content hash; ``meta`` holds everything stored."""

    model: nn.Module
    card: ModelCard
    sigma: float | None
    method: str | None
    policy: Policy | None
    deployed: bool
    path: Path
    sha256: str
    meta: dict[str, Any]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.card.in_channels, *self.card.input_size)


def load(path: str | Path) -> LoadedModel:
    """Load any robustq model file: an FP or quantized ``.safetensors`` checkpoint, or an
    exported ``.onnx`` file (run in ONNX Runtime). Refuses damaged files with one clear line."""
    model, meta = load_model(path)
    quant = meta.get("quant") or {}
    sigma = meta.get("sigma")
    return LoadedModel(model=model, card=ModelCard.from_json(meta["card"]),
                       sigma=None if sigma is None else float(sigma),
                       method=quant.get("method"),
                       policy=Policy.from_json(quant["policy"]) if quant else None,
                       deployed="deployed" in meta, path=Path(path).resolve(),
                       sha256=file_sha256(path), meta=meta)


def checkpoint_cost(model: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
    """BitOPs (% of FP32), size (KiB) and per-layer bits of a loaded checkpoint, FP or
    quantized, as recorded beside results (FP models: 100%, 32-bit weights)."""
    card = ModelCard.from_json(meta["card"])
    shape = (card.in_channels, *card.input_size)
    if not any(True for _ in model.parameters()):      # a deployed (ONNX) model: its card's
        model = card.build()                           # architecture has the same layers
    policy = (Policy.from_json(meta["quant"]["policy"]) if meta.get("quant")
              else uniform_policy(model, FP, FP, first_last_bits=None))
    cost = model_cost(model, policy, shape)
    return {"bitops_percent": cost.bitops_percent, "size_kib": cost.size_bytes / 1024,
            "method": (meta.get("quant") or {}).get("method", "fp"), "policy": policy.to_json()}
