"""Report sections for single-model runs: ``robustq train`` / ``quantize`` outputs (read from
the checkpoint's metadata) and ``robustq amplification`` results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustq.report import plots
from robustq.report.collect import RunRecord
from robustq.report.page import figure, table

MODEL_HEADER = ["run", "arch", "quantization", "epochs", "sigma", "clean acc", "noisy acc",
                "test images", "train s", "started from", "source"]


def bits_summary(quant: dict[str, Any] | None) -> str:
    """``FP32``, ``lsq uniform W4/A4`` or ``lsq mixed W2-8 (mean 4.2) / A4-8`` for a
    checkpoint's ``quant`` record."""
    if not quant:
        return "FP32"
    layers = list(quant.get("policy", {}).values())
    w = [int(x["w"]) for x in layers]
    # activations at 32 bits (or None) stay FP: by default the image input of the first layer
    a = [int(x["a"]) for x in layers if x.get("a") is not None and int(x["a"]) < 32]
    method = quant.get("method", "?")
    if not w:
        return method
    if len(set(w)) == 1 and len(set(a)) <= 1:
        return f"{method} uniform W{w[0]}/A{a[0] if a else 'FP'}"
    return f"{method} mixed W{_span(w)} (mean {np.mean(w):.1f}) / A{_span(a)}"


def _span(bits: list[int]) -> str:
    return (f"{min(bits)}-{max(bits)}" if min(bits) != max(bits) else str(bits[0])) if bits \
        else "FP"


def _model_row(r: RunRecord, src: Callable[..., str]) -> list[Any]:
    m = r.data
    acc = m.get("accuracy") or {}
    base = (m.get("quant_finetune") or {}).get("base", {}).get("checkpoint") or \
        (m.get("train_config") or {}).get("init")
    return [r.name, (m.get("card") or {}).get("arch"), bits_summary(m.get("quant")),
            m.get("epochs"), m.get("sigma"), acc.get("clean_accuracy"),
            acc.get("noisy_accuracy"), acc.get("n"), m.get("train_time_s"), base,
            src(*r.sources)]


def models_section(records: Sequence[RunRecord], src: Callable[..., str]) -> str:
    """One table of every trained or quantized checkpoint found (test accuracy as recorded)."""
    rows = [_model_row(r, src) for r in records if r.kind == "model"]
    if not rows:
        return ""
    return table(MODEL_HEADER, rows, "robustq train / quantize outputs, from each checkpoint's "
                 "own metadata (clean and Gaussian-noise accuracy on the test split as recorded "
                 "at the end of training)")


def amplification_section(records: Sequence[RunRecord], src: Callable[..., str]) -> str:
    """Per-layer error amplification (Lin et al. 2019) of each model: a table of its mean and
    last-layer value, and the curves."""
    out = ""
    for r in (x for x in records if x.kind == "amplification"):
        models = r.data.get("models", {})
        rows = [[Path(k).name, bits_summary(v.get("quant")),
                 float(np.mean(list(v["layers"].values()))), list(v["layers"].values())[-1]]
                for k, v in models.items() if v.get("layers")]
        if not rows:
            continue
        out += table(["model", "quantization", "mean amplification", "last layer"], rows,
                     f"{r.data.get('attack', '?')} on {r.data.get('images', '?')} test images; "
                     "amplification = ||a(x_adv) - a(x)|| / ||a(x)|| per layer, from "
                     f"{src(*r.sources)}")
        curves = {Path(k).name: v["layers"] for k, v in models.items() if v.get("layers")}
        out += figure(plots.amplification(curves), "Per-layer error amplification of "
                      "adversarial perturbations (lower: the perturbation grows less).",
                      "error amplification")
    return out
