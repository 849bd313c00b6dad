"""``robustq amplification``: Defensive Quantization's error-amplification measurement.

For each model (an FP checkpoint and any quantized ones), attack the same test images (FGSM or
PGD on that model) and report per layer ||a(x_adv) - a(x)||_2 / ||a(x)||_2, averaged over the
images, in module order. Results go to one JSON file, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustq.bench.attacks import get_attack
from robustq.cli.common import NOTHING, SeedOpt, console, friendly_errors
from robustq.cli.train_cmd import DataOpt, set_threads
from robustq.data import load_dataset
from robustq.quant.checkpoint import load_model
from robustq.quant.defensive import error_amplification
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_json
from robustq.utils.provenance import provenance
from robustq.utils.validate import check_int, parse_number


@friendly_errors(out_file=True, on_interrupt=NOTHING)
def amplification_cmd(
    checkpoints: Annotated[list[Path], typer.Argument(help="FP and/or quantized checkpoints")],
    out: Annotated[Path, typer.Option(help="output JSON file (the report reads it given "
                                      "directly, or as amplification.json in a run directory)")],
    data: DataOpt = "embedded",
    attack: Annotated[str, typer.Option(help="fgsm | pgd")] = "pgd",
    norm: Annotated[str, typer.Option(help="linf | l2")] = "linf",
    eps: Annotated[str, typer.Option(help="budget, e.g. 8/255")] = "8/255",
    images: Annotated[int, typer.Option(help="test images (evenly spaced)")] = 500,
    seed: SeedOpt = 0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
) -> None:
    """Per-layer error amplification of adversarial perturbations (Lin et al. 2019)."""
    set_threads(threads)
    eps_value = parse_number(eps, "--eps")
    check_int(images, "--images", 1)
    if not eps_value > 0:
        raise RobustqError(f"--eps must be > 0, got {eps!r}")
    att = get_attack(attack, norm, eps_value, seed=seed)
    ds = load_dataset(data, "test").spread(images)
    x, y = ds.tensors()
    result = {"kind": "amplification", "attack": att.label, "images": len(ds), "models": {}}
    for ckpt in checkpoints:
        model, meta = load_model(ckpt)
        x_adv = att(model, x, y)
        amp = error_amplification(model, x, x_adv)
        result["models"][str(ckpt)] = {"quant": meta.get("quant"), "layers": amp}
        console.print(f"{ckpt}: mean amplification {sum(amp.values()) / len(amp):.3f}, last "
                      f"layer {list(amp.values())[-1]:.3f}")
    result["provenance"] = provenance(seed, {"attack": att.label, "images": images})
    atomic_write_json(out, result)
    console.print(f"-> {out}")
