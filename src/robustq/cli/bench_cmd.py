"""``robustq bench``: the RobustMQ grid (attacks, corruptions, systematic noise) of an FP model
and its quantized versions; resumable unit by unit, one results table (CSV + JSON) at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustq.bench.runner import FAMILIES, METHODS, BenchConfig, BenchRun
from robustq.bench.tables import summarize_run
from robustq.cli.common import (
    FpCheckpointArg,
    Machine,
    OutDirOpt,
    SeedOpt,
    console,
    friendly_errors,
    on_machine,
)
from robustq.cli.progress import console_progress
from robustq.cli.train_cmd import DataOpt
from robustq.utils.validate import parse_int, parse_names, parse_numbers


@friendly_errors
@on_machine
def bench_cmd(
    checkpoint: FpCheckpointArg,
    out: OutDirOpt,
    data: DataOpt = "embedded",
    methods: Annotated[str, typer.Option(help="comma-separated: " + ", ".join(METHODS))]
    = ",".join(METHODS),
    bits: Annotated[str, typer.Option(help="comma-separated bit-widths (W = A)")] = "2,4,6,8",
    families: Annotated[str, typer.Option(help="comma-separated: " + ", ".join(FAMILIES))]
    = ",".join(FAMILIES),
    images: Annotated[int, typer.Option(help="test images (evenly spaced)")] = 1000,
    attack_images: Annotated[int | None, typer.Option(help="FGSM/PGD on this many of the images "
                                                      "(default: all)")] = None,
    autoattack_images: Annotated[int, typer.Option(help="AutoAttack on this many of the "
                                                   "attacked images")] = 100,
    autoattack_chunk: Annotated[int, typer.Option(help="AutoAttack images per call and "
                                                  "checkpoint (a kill loses at most one)")]
    = BenchConfig.autoattack_chunk,
    linf_eps: Annotated[str, typer.Option(help="FGSM/PGD l_inf budgets")] = "0.5/255,2/255,8/255",
    l2_eps: Annotated[str, typer.Option(help="FGSM/PGD l_2 budgets")] = "0.125,0.25,0.5",
    autoattack_eps: Annotated[str, typer.Option(help="AutoAttack l_inf budgets")] = "2/255",
    corruptions: Annotated[str | None, typer.Option(help="comma-separated (default: the 15)")]
    = None,
    models_dir: Annotated[Path | None, typer.Option(help="quantized models <dir>/<method>_w<b>a<b>"
                                                    "/model.safetensors; missing ones are "
                                                    "fine-tuned there")] = None,
    finetune_epochs: Annotated[int, typer.Option(help="QAT epochs per quantized model")] = 1,
    finetune_images: Annotated[int, typer.Option(help="training images per QAT epoch")] = 10_000,
    seed: SeedOpt = 0,
    machine: Machine = None,
) -> None:
    """Benchmark adversarial, natural and systematic robustness of quantized models."""
    where, executor = machine.device, machine.executor
    kw = {"corruptions": parse_names(corruptions, "--corruptions")} if corruptions is not None \
        else {}
    bit_list = tuple(parse_int(b, "--bits") for b in parse_names(bits, "--bits"))
    cfg = BenchConfig(checkpoint=str(checkpoint), data=data,
                      methods=parse_names(methods, "--methods"), bits=bit_list,
                      families=parse_names(families, "--families"), images=images,
                      attack_images=attack_images,
                      autoattack_images=min(autoattack_images, attack_images or images, images),
                      autoattack_chunk=autoattack_chunk,
                      linf_eps=parse_numbers(linf_eps, "--linf-eps"),
                      l2_eps=parse_numbers(l2_eps, "--l2-eps"),
                      autoattack_eps=parse_numbers(autoattack_eps, "--autoattack-eps"),
                      models_dir=str(models_dir) if models_dir else None,
                      finetune_epochs=finetune_epochs, finetune_images=finetune_images, seed=seed,
                      **kw)
    BenchRun(cfg, out, where).run(console_progress(), executor)
    print_results(out)


def print_results(out: Path) -> None:
    """The benchmark's table per model and RobustMQ's findings, from the stored units."""
    result = summarize_run(out)
    for r in result["models"]:
        parts = [f"clean {r['clean_accuracy']:.3f}"]
        for key in ("wcar", "wcar_gradient", "mce", "mnr", "acc_s"):
            if r.get(key) is not None:
                parts.append(f"{key} {r[key]:.3f}")
        if r.get("masking"):
            parts.append("[yellow]gradient masking (Square beat white-box)[/]")
        console.print(f"{r['model']:>12}: " + ", ".join(parts))
    for f in result["findings"]:
        verdict = {True: "[green]holds[/]", False: "[red]does not hold[/]",
                   None: "[yellow]not enough data[/]"}[f["holds"]]
        console.print(f"finding {f['claim']}: {verdict}")
    console.print(f"-> {out / 'results.csv'}, {out / 'results.json'}")
