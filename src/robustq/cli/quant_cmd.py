"""``robustq quantize`` (quantization-aware fine-tuning) and ``robustq cost`` (BitOPs, size)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from robustq.cli.common import (
    METHODS_HELP,
    NOTHING,
    RESUME,
    ConsistencyCopiesOpt,
    ConsistencyEntropyOpt,
    ConsistencyOpt,
    DeviceOpt,
    FpCheckpointArg,
    PrecisionOpt,
    QuantKernelsOpt,
    SeedOpt,
    ThreadsOpt,
    console,
    fail,
    friendly_errors,
    set_threads,
)
from robustq.cli.progress import RichTrainReporter
from robustq.cli.train_cmd import DataOpt
from robustq.models import ModelCard
from robustq.quant import get_policy, model_cost
from robustq.quant.checkpoint import load_model
from robustq.quant.workflow import QAT_RECIPES, QuantizeJob, qat_recipe, resolve_policy, run_quantize
from robustq.utils.errors import RobustqError


def _load_recipe(ctx: typer.Context, value: str | None) -> str | None:
    """Eager callback: the recipe's values become the defaults (a --config file and flags
    override them)."""
    if value is None or ctx.resilient_parsing:
        return value
    try:
        ctx.default_map = {**qat_recipe(value), **(ctx.default_map or {})}
    except RobustqError as e:
        fail(f"--recipe: {e}")
    return value


RecipeOpt = Annotated[str | None, typer.Option(
    is_eager=True, callback=_load_recipe,
    help="a named QAT recipe whose values become the defaults: " + "; ".join(
        f"{name}: {', '.join(f'{k}={v}' for k, v in r.items())}" for name, r in QAT_RECIPES.items()))]
PolicyOpt = Annotated[Path | None, typer.Option(help="policy file (JSON or YAML)")]
BitsOpt = Annotated[str | None, typer.Option(help="uniform policy W/A, e.g. 4/4 (or 4)")]
FirstLastOpt = Annotated[int | None, typer.Option(help="bits of first and last layers "
                                                  "(default 8; 0 = same as the rest)")]


@friendly_errors(on_interrupt=RESUME)
def quantize_cmd(
    checkpoint: FpCheckpointArg,
    out: Annotated[Path, typer.Option(help="output directory")],
    data: DataOpt = QuantizeJob.data,
    policy: PolicyOpt = None,
    bits: BitsOpt = None,
    first_last: FirstLastOpt = None,
    method: Annotated[str, typer.Option(help=METHODS_HELP)] = QuantizeJob.method,
    epochs: Annotated[int, typer.Option(help="fine-tuning epochs (0: post-training only)")] \
    = QuantizeJob.epochs,
    lr: Annotated[float, typer.Option(help="peak learning rate (cosine schedule)")] = QuantizeJob.lr,
    batch_size: Annotated[int, typer.Option(help="training images per step")] = QuantizeJob.batch_size,
    train_images: Annotated[int | None, typer.Option(help="fine-tune on N evenly spaced "
                                                     "training images")] = None,
    sigma: Annotated[float | None, typer.Option(help="noise std (default: checkpoint's)")] = None,
    dq_beta: Annotated[float, typer.Option(help="Defensive Quantization beta (0 = off)")] \
    = QuantizeJob.dq_beta,
    act_bound: Annotated[float | None, typer.Option(help="bounded ReLU min(max(x,0),B) for "
                                                    "every activation (DQ: 6)")] = None,
    pact_lambda: Annotated[float, typer.Option(help="PACT: L2 weight on the clipping levels")] \
    = QuantizeJob.pact_lambda,
    distill: Annotated[float, typer.Option(help="weight w of distillation from the FP model on "
                                           "the same noisy input: (1-w) CE + w KD (0 = off)")]
    = QuantizeJob.distill,
    distill_temperature: Annotated[float, typer.Option(help="distillation temperature")] \
    = QuantizeJob.distill_temperature,
    consistency: ConsistencyOpt = QuantizeJob.consistency,
    consistency_copies: ConsistencyCopiesOpt = QuantizeJob.consistency_copies,
    consistency_entropy: ConsistencyEntropyOpt = QuantizeJob.consistency_entropy,
    precision: PrecisionOpt = QuantizeJob.precision,
    quant_kernels: QuantKernelsOpt = QuantizeJob.quant_kernels,
    seed: SeedOpt = QuantizeJob.seed,
    recipe: RecipeOpt = None,
    resume: Annotated[bool, typer.Option(help="continue a killed run in --out")] = False,
    threads: ThreadsOpt = None,
    device: DeviceOpt = QuantizeJob.device,
) -> None:
    """Quantize an FP checkpoint with a policy and fine-tune it with noise augmentation."""
    set_threads(threads)
    job = QuantizeJob(
        checkpoint=str(checkpoint), data=data, policy=None if policy is None else str(policy),
        bits=bits, first_last=first_last, method=method, epochs=epochs, lr=lr,
        batch_size=batch_size, train_images=train_images, sigma=sigma, dq_beta=dq_beta,
        act_bound=act_bound, pact_lambda=pact_lambda, distill=distill,
        distill_temperature=distill_temperature, consistency=consistency,
        consistency_copies=consistency_copies, consistency_entropy=consistency_entropy, seed=seed,
        precision=precision, quant_kernels=quant_kernels, device=device, recipe=recipe)
    done = run_quantize(job, out, resume=resume, reporter=RichTrainReporter(), say=console.print)
    acc, sigma = done.meta["accuracy"], done.meta["sigma"]
    console.print(f"test accuracy {acc['clean_accuracy']:.4f}"
                  + (f", under sigma={sigma} noise {acc['noisy_accuracy']:.4f}" if sigma else "")
                  + f"; checkpoint {done.checkpoint}")


def card_shape(card: ModelCard) -> tuple[int, int, int]:
    return (card.in_channels, *card.input_size)


@friendly_errors(on_interrupt=NOTHING)
def cost_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="FP or quantized robustq checkpoint")],
    policy: PolicyOpt = None,
    bits: BitsOpt = None,
    first_last: FirstLastOpt = None,
) -> None:
    """Per-layer MACs, BitOPs and weight size of a checkpoint under a policy."""
    model, meta = load_model(checkpoint)
    if policy is None and bits is None and "quant" in meta:
        pol = get_policy(model)
    else:
        pol = resolve_policy(model, policy, bits, first_last)
    cost = model_cost(model, pol, card_shape(ModelCard.from_json(meta["card"])))
    table = Table(title=f"{checkpoint.name}: {meta['card']['arch']}")
    for col in ("layer", "MACs", "W bits", "A bits", "BitOPs", "weights", "weight KiB"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for c in cost.layers:
        table.add_row(c.name, f"{c.macs:,}", str(c.w_bits), str(c.a_bits), f"{c.bitops:,}",
                      f"{c.weights:,}", f"{c.weight_bits / 8 / 1024:.1f}")
    table.add_section()
    table.add_row("total", f"{cost.macs:,}", "", "", f"{cost.bitops:,}", "",
                  f"{cost.weight_bytes / 1024:.1f}")
    console.print(table)
    typer.echo(f"BitOPs {cost.bitops:,} = {cost.bitops_percent:.3f}% of FP32; weights "
               f"{cost.weight_bytes / 1024:.1f} KiB + {cost.fp32_params:,} FP32 parameters "
               f"(biases, BN) = {cost.size_bytes / 1024:.1f} KiB")
