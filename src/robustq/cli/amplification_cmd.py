"""``robustq amplification``: Defensive Quantization's error-amplification measurement
(``robustq.bench.amplification``), written to one JSON file atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustq.bench.amplification import AmplificationJob, run_amplification
from robustq.cli.common import NOTHING, SeedOpt, ThreadsOpt, console, friendly_errors, set_threads
from robustq.cli.train_cmd import DataOpt
from robustq.utils.validate import check_int, parse_number


@friendly_errors(out_file=True, on_interrupt=NOTHING)
def amplification_cmd(
    checkpoints: Annotated[list[Path], typer.Argument(help="FP and/or quantized checkpoints")],
    out: Annotated[Path, typer.Option(help="output JSON file (the report reads it given "
                                      "directly, or as amplification.json in a run directory)")],
    data: DataOpt = "embedded",
    attack: Annotated[str, typer.Option(help="fgsm | pgd")] = AmplificationJob.attack,
    norm: Annotated[str, typer.Option(help="linf | l2")] = AmplificationJob.norm,
    eps: Annotated[str, typer.Option(help="budget, e.g. 8/255")] = "8/255",
    images: Annotated[int, typer.Option(help="test images (evenly spaced)")] = AmplificationJob.images,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = None,
) -> None:
    """Per-layer error amplification of adversarial perturbations (Lin et al. 2019)."""
    set_threads(threads)
    job = AmplificationJob(checkpoints=tuple(str(c) for c in checkpoints), data=data,
                           attack=attack, norm=norm, eps=parse_number(eps, "--eps"),
                           images=check_int(images, "--images", 1), seed=seed)
    run_amplification(job, out, say=console.print)
    console.print(f"-> {out}")
