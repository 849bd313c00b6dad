"""Sampling engines: how a classifier is run while randomized smoothing samples it.

A certificate is for the classifier actually sampled, so each engine says which classifier it
computes (``Engine.classifier``), and certification records it in run.json. The noise is the
same for every engine (drawn by the sampler from the recorded seeds, before the engine runs).

- ``eager``: the checkpoint's model as it is.
- ``torch``: a frozen TorchScript copy (quantized layers frozen first): the same classifier up
  to float rounding.
- ``compile``: ``torch.compile`` of the same copy: the same classifier up to float rounding;
  costs 30-60 s of compilation, so it pays from about a million samples.
- ``bf16``: weights and activations in bfloat16 (compiled): *another* classifier, ~1.7x faster
  than fp32 on a CPU with AVX512-BF16; its certificate is for the bf16 model.
- ``onnx``: the ``robustq export`` file in ONNX Runtime: for an FP checkpoint the same
  classifier up to float rounding; for a quantized one the deployed integer model.
- ``onnx-int8``: an FP checkpoint statically quantized to int8 by ONNX Runtime (calibrated on
  noisy training images): the deployed int8 model, the fastest here.
- ``auto`` (the default): the fastest engine measured here that computes the checkpoint's own
  classifier (``auto_engine``). Engines that change the classifier are used only when asked.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustq.models.approx import LowPrecision
from robustq.models.compile import (
    COMPILE_FROM_SAMPLES,
    compile_for_inference,
    fast_inference,
    freeze_for_inference,
)
from robustq.quant.inference import freeze_quantized
from robustq.quant.layers import QuantLayer
from robustq.utils.errors import RobustqError

CALIBRATION_IMAGES = 512


@dataclass(frozen=True)
class Engine:
    """One way to run a classifier; ``classifier`` names what a certificate through it covers."""

    name: str
    classifier: str
    help: str


ENGINES = {e.name: e for e in (
    Engine("auto", "checkpoint", "the fastest engine that computes the checkpoint's classifier "
           "(FP: onnx if installed; quantized: compile; torch for short runs)"),
    Engine("eager", "checkpoint", "the model as it is (torch eager)"),
    Engine("torch", "checkpoint", "frozen TorchScript copy (same classifier up to float "
           "rounding)"),
    Engine("compile", "checkpoint", "torch.compile copy (same classifier up to float rounding; "
           "30-60 s to compile)"),
    Engine("bf16", "bf16", "the model in bfloat16, compiled (certifies the bf16 classifier)"),
    Engine("onnx", "deployed", "robustq export in ONNX Runtime (a quantized checkpoint: the "
           "deployed integer model)"),
    Engine("onnx-int8", "deployed int8", "an FP checkpoint quantized to int8 by ONNX Runtime "
           "(certifies that int8 model)"),
)}


def check_engine(name: str, quantized: bool) -> Engine:
    """The engine called ``name``, refused with one clear line if unknown or unfit."""
    if name not in ENGINES:
        raise RobustqError(f"--engine must be one of {', '.join(ENGINES)}, got {name!r}")
    if name == "onnx-int8" and quantized:
        raise RobustqError("--engine onnx-int8 quantizes an FP checkpoint; a quantized "
                           "checkpoint runs its own int8 layers with --engine onnx")
    return ENGINES[name]


def calibration_images(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Noisy copies of ``images`` as the smoothed classifier sees them (one noise draw each,
    seeded): int8 ranges calibrated on clean images would clip the noisy ones."""
    g = torch.Generator().manual_seed(seed)
    return images + sigma * torch.randn(images.shape, generator=g)


def deploy(checkpoint: Path, out: Path, calibration: torch.Tensor | None
           ) -> tuple[nn.Module, dict[str, Any]]:
    """Export ``checkpoint`` to ``out/deployed.onnx`` (written only once the export worked) and
    load it in ONNX Runtime."""
    from robustq.models.onnx_runtime import load_onnx
    from robustq.quant.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(checkpoint, Path(tmp) / "deployed.onnx", int8_calibration=calibration)
        out.mkdir(parents=True, exist_ok=True)
        shutil.move(Path(tmp) / "deployed.onnx", out / "deployed.onnx")
    deployed, meta = load_onnx(out / "deployed.onnx")
    info = {"deployed": meta["deployed"], "source": meta["source"],
            "quantized": bool(meta.get("quant"))}
    if "int8" in meta:
        info["int8"] = meta["int8"]
    return deployed, info


def auto_engine(model: nn.Module, samples: int) -> str:
    """The fastest engine measured here (docs/benchmarks.md, "Sampling engines") that computes
    the checkpoint's own classifier: for an FP model fp32 ONNX Runtime (1.24x ``compile``, 1.5x
    ``torch``) when onnxruntime is installed; for a fake-quantized one ``compile`` (ONNX Runtime
    would run the deployed integer model, another classifier); ``torch`` below
    ``COMPILE_FROM_SAMPLES`` samples, where compiling does not pay."""
    if samples < COMPILE_FROM_SAMPLES:
        return "torch"
    if not any(isinstance(m, QuantLayer) for m in model.modules()):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "compile"
        return "onnx"
    return "compile"


def build_engine(name: str, model: nn.Module, checkpoint: Path, example_shape: tuple[int, ...],
                 samples: int, out: Path,
                 calibration: Callable[[], torch.Tensor] | None = None
                 ) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict[str, Any]]:
    """The sampled classifier for ``model`` (loaded from ``checkpoint``) through engine
    ``name``, and what run.json records about it. ``samples`` (forward samples still to run)
    decides ``auto``; ``calibration`` gives the images ``onnx-int8`` calibrates on; ONNX
    engines write ``out/deployed.onnx``."""
    engine = ENGINES[name]
    if name == "auto":
        name = auto_engine(model, samples)
    info: dict[str, Any] = {"engine": name, "classifier": engine.classifier}
    if name in ("onnx", "onnx-int8"):
        if name == "onnx-int8" and calibration is None:
            raise RobustqError("--engine onnx-int8 needs calibration images")
        deployed, extra = deploy(checkpoint, out, calibration() if name == "onnx-int8" else None)
        if not extra.pop("quantized") and name == "onnx":
            info["classifier"] = "checkpoint"           # fp32 in ONNX Runtime: float rounding
        return deployed, {**info, "runtime": "onnxruntime", **extra}
    if name == "eager":
        return model, info
    frozen = freeze_quantized(model)
    if name == "torch":
        return freeze_for_inference(frozen, example_shape), info
    if name == "compile":
        return compile_for_inference(frozen, example_shape), info
    return fast_inference(LowPrecision(frozen), example_shape, samples), info
