"""``robustq train`` and ``robustq evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from robustq.cli.common import (
    NOTHING,
    RESUME,
    ConsistencyCopiesOpt,
    ConsistencyEntropyOpt,
    ConsistencyOpt,
    DeviceOpt,
    PrecisionOpt,
    SeedOpt,
    ThreadsOpt,
    console,
    friendly_errors,
    set_threads,
)
from robustq.cli.progress import RichTrainReporter
from robustq.data import load_dataset
from robustq.models.evaluate import evaluate as evaluate_model
from robustq.models.train import TrainConfig
from robustq.quant.checkpoint import load_model
from robustq.quant.workflow import TrainJob, check_fits, run_train
from robustq.utils import atomic_write_json, provenance
from robustq.utils.errors import RobustqError
from robustq.utils.validate import check_sigma

DataOpt = Annotated[str, typer.Option("--data", help="'embedded' (MNIST subset), "
                                      "'embedded-cifar10', a CIFAR-10/MNIST directory, or an "
                                      "ImageFolder directory or .zip")]


@friendly_errors(on_interrupt=RESUME)
def train_cmd(
    out: Annotated[Path, typer.Option("--out", help="output directory (checkpoints, log)")],
    data: DataOpt = "embedded",
    arch: Annotated[str, typer.Option(help="model name (see `robustq models`)")] = TrainConfig.arch,
    epochs: Annotated[int, typer.Option(help="passes over the training split")] = TrainConfig.epochs,
    batch_size: Annotated[int, typer.Option(help="training images per step")] = TrainConfig.batch_size,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = TrainConfig.lr,
    momentum: Annotated[float, typer.Option(help="SGD (Nesterov) momentum")] = TrainConfig.momentum,
    weight_decay: Annotated[float, typer.Option(help="L2 on conv/linear weights")] = TrainConfig.weight_decay,
    schedule: Annotated[str, typer.Option(help="cosine | step | onecycle")] = TrainConfig.schedule,
    sigma: Annotated[float, typer.Option(help="Gaussian noise std, [0,1] pixel units")] = TrainConfig.sigma,
    crop_padding: Annotated[int | None, typer.Option(help="random-crop padding "
                                                     "(default: 4 for 32px RGB, 2 else)")] = None,
    flip: Annotated[bool | None, typer.Option("--flip/--no-flip", help="horizontal flips "
                                              "(default: on for RGB)")] = None,
    seed: SeedOpt = 0,
    eval_images: Annotated[int, typer.Option(help="test images evaluated per epoch")] \
    = TrainConfig.eval_images,
    dq_beta: Annotated[float, typer.Option(help="Defensive Quantization Lipschitz "
                                           "regularizer beta (0 = off)")] = TrainJob.dq_beta,
    act_bound: Annotated[float | None, typer.Option(help="bounded ReLU min(max(x,0),B) "
                                                    "(Defensive Quantization; default: ReLU)")]
    = None,
    max_images: Annotated[int | None, typer.Option(help="train on this many training images "
                                                   "(an evenly spread, class-balanced subset)")]
    = None,
    init: Annotated[Path | None, typer.Option(help="warm start from this FP checkpoint's weights "
                                              "(same architecture; its card is kept)")] = None,
    consistency: ConsistencyOpt = TrainConfig.consistency,
    consistency_copies: ConsistencyCopiesOpt = TrainConfig.consistency_copies,
    consistency_entropy: ConsistencyEntropyOpt = TrainConfig.consistency_entropy,
    precision: PrecisionOpt = TrainConfig.precision,
    resume: Annotated[bool, typer.Option(help="continue a killed run in --out")] = False,
    threads: ThreadsOpt = None,
    device: DeviceOpt = TrainJob.device,
) -> None:
    """Train a classifier with Gaussian noise augmentation at sigma (for randomized smoothing)."""
    set_threads(threads)
    cfg = TrainConfig(arch=arch, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                      weight_decay=weight_decay, schedule=schedule, sigma=sigma,
                      crop_padding=crop_padding, flip=flip, seed=seed, eval_images=eval_images,
                      max_images=max_images, init=None if init is None else str(init),
                      consistency=consistency, consistency_copies=consistency_copies,
                      consistency_entropy=consistency_entropy, precision=precision)
    job = TrainJob(data=data, train=cfg, act_bound=act_bound, dq_beta=dq_beta, device=device)
    done = run_train(job, out, resume=resume, reporter=RichTrainReporter(), say=console.print)
    acc = done.meta["accuracy"]
    console.print(f"done in {done.meta['train_time_s']:.0f}s: test accuracy "
                  f"{acc['clean_accuracy']:.4f}"
                  + (f", under sigma={sigma} noise {acc['noisy_accuracy']:.4f}" if sigma else "")
                  + f"; checkpoint {done.checkpoint}")


@friendly_errors(out_file=True, on_interrupt=NOTHING)
def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="a robustq .safetensors checkpoint")],
    data: DataOpt = "embedded",
    split: Annotated[str, typer.Option(help="train | test")] = "test",
    sigma: Annotated[float | None, typer.Option(help="noise std (default: the checkpoint's)")] = None,
    seed: SeedOpt = 0,
    batch_size: Annotated[int, typer.Option(help="images per forward pass")] = 500,
    out: Annotated[Path | None, typer.Option(help="write the results as JSON here")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Clean accuracy and accuracy under Gaussian noise of a checkpoint."""
    set_threads(threads)
    if batch_size < 1:
        raise RobustqError(f"--batch-size must be >= 1, got {batch_size}")
    model, meta = load_model(checkpoint)
    ds = load_dataset(data, split)
    check_fits(model, ds, checkpoint)
    sigma_given = sigma is not None
    sigma = meta.get("sigma", 0.0) if sigma is None else sigma
    sigma = check_sigma(sigma, "--sigma" if sigma_given else f"{checkpoint}: sigma",
                        allow_zero=True)
    res = evaluate_model(model, ds, sigma, batch_size=batch_size, seed=seed)
    res.update(checkpoint=str(checkpoint), data=ds.source, split=split)
    line = f"{checkpoint}: {res['n']} {split} images, clean accuracy {res['clean_accuracy']:.4f}"
    if sigma > 0:
        line += f", under sigma={sigma} noise {res['noisy_accuracy']:.4f}"
    typer.echo(line)
    if out is not None:
        atomic_write_json(out, {"results": res, "provenance": provenance(seed)})
    else:
        typer.echo(json.dumps(res))
