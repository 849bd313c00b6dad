"""``robustq quantize`` (quantization-aware fine-tuning) and ``robustq cost`` (BitOPs, size)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from robustq.cli.common import NOTHING, RESUME, DeviceOpt, SeedOpt, console, friendly_errors
from robustq.cli.progress import RichTrainReporter
from robustq.cli.train_cmd import DataOpt, set_machine
from robustq.data import load_dataset
from robustq.models import ModelCard
from robustq.models.base import set_activation_bound
from robustq.models.train import TrainConfig
from robustq.quant import Policy, get_policy, model_cost, uniform_policy
from robustq.quant.checkpoint import load_model
from robustq.quant.finetune import quantize_and_finetune
from robustq.utils.errors import RobustqError

PolicyOpt = Annotated[Path | None, typer.Option(help="policy file (JSON or YAML)")]
BitsOpt = Annotated[str | None, typer.Option(help="uniform policy W/A, e.g. 4/4 (or 4)")]
FirstLastOpt = Annotated[int | None, typer.Option(help="bits of first and last layers "
                                                  "(default 8; 0 = same as the rest)")]


def resolve_policy(model, policy: Path | None, bits: str | None, first_last: int | None,
                   first_input_fp: bool = True) -> Policy:
    if (policy is None) == (bits is None):
        raise RobustqError("give exactly one of --policy FILE or --bits W/A")
    if policy is not None:
        return Policy.load(policy, model)
    try:
        w, _, a = bits.partition("/")
        w_bits, a_bits = int(w), int(a or w)
    except ValueError:
        raise RobustqError(f"--bits must look like 4/4 or 4, got {bits!r}") from None
    fl = 8 if first_last is None else (None if first_last == 0 else first_last)
    return uniform_policy(model, w_bits, a_bits, fl, first_input_fp).validate(model)


@friendly_errors(on_interrupt=RESUME)
def quantize_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="FP robustq checkpoint")],
    out: Annotated[Path, typer.Option(help="output directory")],
    data: DataOpt = "embedded",
    policy: PolicyOpt = None,
    bits: BitsOpt = None,
    first_last: FirstLastOpt = None,
    method: Annotated[str, typer.Option(help="minmax | dorefa | pact | lsq")] = "lsq",
    epochs: Annotated[int, typer.Option(help="fine-tuning epochs (0: post-training only)")] = 1,
    lr: Annotated[float, typer.Option(help="peak learning rate (cosine schedule)")] = 0.01,
    batch_size: Annotated[int, typer.Option(help="training images per step")] = 128,
    train_images: Annotated[int | None, typer.Option(help="fine-tune on N evenly spaced "
                                                     "training images")] = None,
    sigma: Annotated[float | None, typer.Option(help="noise std (default: checkpoint's)")] = None,
    dq_beta: Annotated[float, typer.Option(help="Defensive Quantization beta (0 = off)")] = 0.0,
    act_bound: Annotated[float | None, typer.Option(help="bounded ReLU min(max(x,0),B) for "
                                                    "every activation (DQ: 6)")] = None,
    pact_lambda: Annotated[float, typer.Option(help="PACT: L2 weight on the clipping levels")] = 1e-4,
    distill: Annotated[float, typer.Option(help="weight w of distillation from the FP model on "
                                           "the same noisy input: (1-w) CE + w KD (0 = off)")]
    = 0.0,
    distill_temperature: Annotated[float, typer.Option(help="distillation temperature")] = 1.0,
    seed: SeedOpt = 0,
    resume: Annotated[bool, typer.Option(help="continue a killed run in --out")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Quantize an FP checkpoint with a policy and fine-tune it with noise augmentation."""
    where = set_machine(threads, device)
    model, meta = load_model(checkpoint)
    if "quant" in meta:
        raise RobustqError(f"{checkpoint}: already quantized; start from an FP checkpoint")
    card = ModelCard.from_json(meta["card"])
    if act_bound is not None:
        if not act_bound > 0:
            raise RobustqError(f"--act-bound must be > 0, got {act_bound}")
        set_activation_bound(model, act_bound)
        card = ModelCard.from_json({**card.to_json(),
                                    "extra": {**card.extra, "act_bound": act_bound}})
    pol = resolve_policy(model, policy, bits, first_last)
    train_ds, test_ds = load_dataset(data, "train"), load_dataset(data, "test")
    if train_images is not None:
        train_ds = train_ds.spread(train_images)
    sigma = meta.get("sigma", 0.0) if sigma is None else sigma
    cfg = qat_config(card, max(epochs, 1), batch_size, lr, sigma, seed, distill,
                     distill_temperature)
    if epochs < 0:
        raise RobustqError(f"--epochs must be >= 0, got {epochs}")
    console.print(f"quantizing {card.arch} with {method}, "
                  f"BitOPs {model_cost(model, pol, card_shape(card)).bitops_percent:.2f}% of FP32"
                  f", fine-tuning {epochs} epoch(s) at sigma={sigma} -> {out}")
    qmodel, qmeta = quantize_and_finetune(
        model, card, pol, method, train_ds, test_ds, cfg, out, resume=resume,
        reporter=RichTrainReporter(), pact_lambda=pact_lambda, dq_beta=dq_beta,
        base_meta={"checkpoint": str(checkpoint), "accuracy": meta.get("accuracy")},
        finetune=epochs > 0, device=where)
    acc = qmeta["accuracy"]
    console.print(f"test accuracy {acc['clean_accuracy']:.4f}"
                  + (f", under sigma={sigma} noise {acc['noisy_accuracy']:.4f}" if sigma else "")
                  + f"; checkpoint {out / 'model.safetensors'}")


def qat_config(card: ModelCard, epochs: int, batch_size: int, lr: float, sigma: float, seed: int,
               distill: float, distill_temperature: float) -> TrainConfig:
    """quantize's fine-tuning: cosine schedule, crop (4 px RGB, 2 otherwise), flips for RGB."""
    rgb = card.in_channels == 3
    return TrainConfig(arch=card.arch, epochs=epochs, batch_size=batch_size, lr=lr,
                       weight_decay=5e-4, schedule="cosine", sigma=sigma,
                       crop_padding=4 if rgb else 2, flip=rgb, seed=seed, eval_images=1000,
                       distill=distill, distill_temperature=distill_temperature)


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
