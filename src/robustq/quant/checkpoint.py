"""Quantized checkpoints: weights, learned quantizer parameters, the policy and the method, in
one safetensors file; ``load_model`` reads FP and quantized checkpoints alike."""

from __future__ import annotations

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
