"""Defensive Quantization's error-amplification measurement as a library function:
``run_amplification(AmplificationJob)`` attacks the same test images on each model (FGSM or PGD
on that model) and returns, per layer in module order, ||a(x_adv) - a(x)||_2 / ||a(x)||_2
averaged over the images (Lin, Gan & Han 2019)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustq.bench.attacks import get_attack
from robustq.data import load_dataset
from robustq.quant.checkpoint import load_model
from robustq.quant.defensive import error_amplification
from robustq.utils.config import JsonConfig
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_json
from robustq.utils.progress import say_nothing
from robustq.utils.provenance import provenance

AMPLIFICATION_FILE = "amplification.json"


@dataclass(frozen=True)
class AmplificationJob(JsonConfig):
    """``checkpoints`` (FP and/or quantized) attacked by ``attack`` (fgsm | pgd) in ``norm``
    (linf | l2) at ``eps`` ([0, 1] pixel units) on ``images`` evenly spaced test images."""

    checkpoints: tuple[str, ...]
    data: str = "embedded"
    attack: str = "pgd"
    norm: str = "linf"
    eps: float = 8 / 255
    images: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.checkpoints:
            raise RobustqError("give at least one checkpoint")
        if not self.eps > 0:
            raise RobustqError(f"--eps must be > 0, got {self.eps}")
        if self.images < 1:
            raise RobustqError(f"--images must be >= 1, got {self.images}")
        get_attack(self.attack, self.norm, self.eps)       # names the valid attacks and norms


def run_amplification(job: AmplificationJob, out: str | Path | None = None,
                      say: Callable[[str], None] = say_nothing) -> dict[str, Any]:
    """The measurement (kind, attack, images, per model its quantization and per-layer
    amplification, provenance), written atomically to ``out`` if given; ``say`` gets one line
    per model."""
    att = get_attack(job.attack, job.norm, job.eps, seed=job.seed)
    ds = load_dataset(job.data, "test").spread(job.images)
    x, y = ds.tensors()
    result: dict[str, Any] = {"kind": "amplification", "attack": att.label, "images": len(ds),
                              "models": {}}
    for ckpt in job.checkpoints:
        model, meta = load_model(ckpt)
        amp = error_amplification(model, x, att(model, x, y))
        result["models"][str(ckpt)] = {"quant": meta.get("quant"), "layers": amp}
        say(f"{ckpt}: mean amplification {sum(amp.values()) / len(amp):.3f}, last layer "
            f"{list(amp.values())[-1]:.3f}")
    result["provenance"] = provenance(job.seed, job.to_json())
    if out is not None:
        atomic_write_json(out, result)
    return result
