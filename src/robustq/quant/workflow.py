"""The two workflows that make checkpoints, as library functions with one frozen config each:
``run_train`` (an FP classifier, optionally with Defensive Quantization's regularizer, hence
here and not in ``models``) and ``run_quantize`` (an FP checkpoint quantized with a policy and
fine-tuned). Both validate everything before anything is written, then keep ``run.json``
(``utils.records.start_run``: kind, config, the input checkpoints resolved and hashed, status).
The CLI only parses these configs and prints what the functions return."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robustq.data import load_dataset
from robustq.data.dataset import ImageDataset
from robustq.models.base import set_activation_bound
from robustq.models.checkpoint import ModelCard
from robustq.models.train import (
    FINAL_FILE,
    PRECISIONS,
    TrainConfig,
    TrainReporter,
    consistency_checks,
    refuse_unasked_resume,
    train,
)
from robustq.quant.checkpoint import load_model
from robustq.quant.cost import model_cost
from robustq.quant.defensive import lipschitz_penalty
from robustq.quant.finetune import quantize_and_finetune
from robustq.quant.kernels import check_kernels, quant_kernels
from robustq.quant.policy import Policy, uniform_policy
from robustq.quant.quantizers import check_method
from robustq.utils.config import JsonConfig
from robustq.utils.device import resolve_device
from robustq.utils.errors import RobustqError
from robustq.utils.io import file_sha256
from robustq.utils.progress import say_nothing
from robustq.utils.records import finish_run, start_run
from robustq.utils.seeding import seed_everything
from robustq.utils.validate import check_sigma, require


@dataclass(frozen=True)
class TrainJob(JsonConfig):
    """Train ``train.arch`` on ``data`` with Gaussian noise at ``train.sigma`` ([0, 1] pixel
    units). ``act_bound``: bounded ReLU min(max(x, 0), B) everywhere (Defensive Quantization);
    ``dq_beta``: weight of its Lipschitz regularizer (0: off); ``train.init``: warm start from
    that FP checkpoint (its card is kept). ``device``: auto, cpu, cuda or cuda:N."""

    data: str = "embedded"
    train: TrainConfig = field(default_factory=TrainConfig)
    act_bound: float | None = None
    dq_beta: float = 0.0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.act_bound is not None and not self.act_bound > 0:
            raise RobustqError(f"act_bound must be > 0, got {self.act_bound}")
        if not self.dq_beta >= 0:
            raise RobustqError(f"dq_beta must be >= 0, got {self.dq_beta}")


@dataclass(frozen=True)
class Trained:
    """What a training or quantization run made: the model (eval mode), its checkpoint's
    metadata, the checkpoint's path and, for quantized models, the policy and its BitOPs (%)."""

    model: torch.nn.Module
    meta: dict[str, Any]
    checkpoint: Path
    policy: Policy | None = None
    bitops_percent: float = 100.0


def check_fits(model: torch.nn.Module, ds: ImageDataset, checkpoint: str | Path) -> None:
    """The model's outputs and input channels must match the data set's classes and images."""
    if ds.num_classes != model.num_classes:
        raise RobustqError(f"{ds.source}: {ds.num_classes} classes but {checkpoint} has "
                           f"{model.num_classes} outputs")
    if ds.image_shape[0] != model.in_channels:
        raise RobustqError(f"{ds.source}: {ds.image_shape[0]}-channel images but {checkpoint} "
                           f"expects {model.in_channels}")


def fine_tuning_data(data: str, model: torch.nn.Module, checkpoint: str | Path,
                     train_images: int | None) -> tuple[ImageDataset, ImageDataset]:
    """The train and test splits of ``data`` for fine-tuning ``model`` (checked to fit it), the
    train split cut to ``train_images`` evenly spaced images when given."""
    train_ds, test_ds = load_dataset(data, "train"), load_dataset(data, "test")
    check_fits(model, train_ds, checkpoint)
    if train_images is not None:
        train_ds = train_ds.spread(train_images)
    return train_ds, test_ds


def training_sigma(meta: dict[str, Any], asked: float | None) -> float:
    """The noise level of a fine-tune: ``asked``, else the checkpoint's own (0 when it has none)."""
    return float(meta.get("sigma", 0.0)) if asked is None else asked


def fp_checkpoint(path: str | Path, what: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The FP model at ``path``; a quantized checkpoint is refused, naming ``what`` it is for."""
    model, meta = load_model(path)
    if "quant" in meta:
        raise RobustqError(f"{what} {path}: a quantized checkpoint; start from an FP checkpoint")
    return model, meta


def with_act_bound(model: torch.nn.Module, card: ModelCard, bound: float | None) -> ModelCard:
    """Bound every ReLU of ``model`` at ``bound`` (if given); the card that records it."""
    if bound is None:
        return card
    set_activation_bound(model, bound)
    return ModelCard.from_json({**card.to_json(), "extra": {**card.extra, "act_bound": bound}})


def _model_to_train(job: TrainJob, train_ds: ImageDataset) -> tuple[torch.nn.Module, ModelCard]:
    """A fresh ``arch`` whose card carries the data's normalization, or the warm start."""
    cfg = job.train
    if cfg.init is not None:
        model, meta = fp_checkpoint(cfg.init, "init")
        card = ModelCard.from_json(meta["card"])
        if card.arch != cfg.arch:
            raise RobustqError(f"init {cfg.init}: a {card.arch}, but arch is {cfg.arch}")
        check_fits(model, train_ds, cfg.init)
        return model, with_act_bound(model, card, job.act_bound)
    (c, h, w), (mean, std) = train_ds.image_shape, train_ds.channel_stats()
    card = ModelCard(arch=cfg.arch, num_classes=train_ds.num_classes, in_channels=c, mean=mean,
                     std=std, classes=train_ds.classes, input_size=(h, w),
                     extra={"act_bound": job.act_bound} if job.act_bound is not None else {})
    return card.build(), card


def run_train(job: TrainJob, out: str | Path, resume: bool = False,
              reporter: TrainReporter | None = None, say: Callable[[str], None] = say_nothing) -> Trained:
    """Train as ``job`` says into ``out`` (per-epoch state, log.jsonl, model.safetensors,
    run.json), resuming a killed run of the same job with ``resume``; ``say`` gets one line
    on what is trained, once everything is checked."""
    out = Path(out)
    device = resolve_device(job.device)
    train_ds, test_ds = load_dataset(job.data, "train"), load_dataset(job.data, "test")
    cfg = job.train.for_images(train_ds.image_shape[0])
    if cfg.init is not None:
        cfg = dataclasses.replace(cfg, init=str(Path(cfg.init).resolve()),
                                  init_sha256=file_sha256(cfg.init))
    job = dataclasses.replace(job, train=cfg)
    seed_everything(cfg.seed)
    model, card = _model_to_train(job, train_ds)
    refuse_unasked_resume(out, resume)
    start_run(out, "train", job.to_json(), cfg.seed, {"init": cfg.init} if cfg.init else None)
    say(f"training {cfg.arch} on {train_ds.source} ({len(train_ds)} train, {len(test_ds)} test "
        f"images), sigma={cfg.sigma}, {cfg.epochs} epochs -> {out}")
    extra = (lambda m: lipschitz_penalty(m, job.dq_beta)) if job.dq_beta > 0 else None
    meta = train(model, card, train_ds, test_ds, cfg, out, resume=resume, reporter=reporter,
                 extra_loss=extra, device=device)
    finish_run(out, {"accuracy": meta["accuracy"], "checkpoint": str((out / FINAL_FILE).resolve())})
    return Trained(model.eval(), meta, out / FINAL_FILE)


# Named QAT recipes (issue 17): the values a QuantizeJob takes from ``recipe``; fields set
# explicitly override them (``QuantizeJob.from_recipe``, ``robustq quantize --recipe``).
QAT_RECIPES: dict[str, dict[str, Any]] = {
    # the search's cheap episode budget (one epoch over 2,000 training images at lr 1e-3) in
    # QAT's loop (cosine, weight decay, crops); the search's own episodes fine-tune by
    # robustq.search.evaluate.episode_config (constant lr, plain momentum, no decay or crops)
    "episode": {"method": "lsq", "epochs": 1, "train_images": 2000, "lr": 1e-3, "distill": 0.0},
    # the final models': 3 epochs over the full training split, cosine from lr 0.01, half the
    # loss distilled from the FP model's outputs on the same noisy input at temperature 2, LSQ
    # with its activation steps started at the least-squared-error step (lsq_mse): on ResNet-20
    # it lifts 4/4 deploy-cr by +0.009 [+0.005, +0.013] ACR (500 protocol images) and standard
    # 2/2 from 44.1% to 80.7% clean, 6/6 and 8/8 within 0.3 points (docs/benchmarks.md)
    "deploy": {"method": "lsq_mse", "epochs": 3, "train_images": None, "lr": 0.01,
               "distill": 0.5, "distill_temperature": 2.0},
    # deploy with distillation only and noise-consistency regularization (lambda 3, m = 2 noisy
    # copies, eta 0.5) over 4 epochs: LSQ 4/4 ResNet-20 kept 102.0% of FP's ACR on the 500
    # protocol images against 95.4% for the 8-epoch distillation model, with 1.8 points less
    # smoothed accuracy than FP (docs/benchmarks.md, issue 17)
    "deploy-cr": {"method": "lsq_mse", "epochs": 4, "train_images": None, "lr": 0.01,
                  "distill": 1.0, "distill_temperature": 2.0, "consistency": 3.0},
}


def qat_recipe(name: str) -> dict[str, Any]:
    """The options of the named QAT recipe; an unknown name lists the known ones."""
    if name not in QAT_RECIPES:
        raise RobustqError(f"unknown QAT recipe {name!r} (known: {', '.join(QAT_RECIPES)})")
    return dict(QAT_RECIPES[name])


def recipe_method(name: str | None) -> str:
    """The quantization method the named recipe fine-tunes with (None: the episode recipe's,
    what a search's own short fine-tune uses)."""
    return qat_recipe(name or "episode")["method"]


@dataclass(frozen=True)
class QuantizeJob(JsonConfig):
    """Quantize the FP ``checkpoint`` with ``policy`` (a JSON/YAML file) or uniform ``bits``
    ("W/A", first and last layers at ``first_last`` bits, default 8; 0: like the rest) by
    ``method``, then fine-tune (QAT) for ``epochs`` (0: post-training quantization only) at
    ``sigma`` (default: the checkpoint's) with a cosine schedule from ``lr``, on ``train_images``
    evenly spaced training images (default: all), optionally distilling the FP model's outputs
    on the same noisy input (loss (1 - w) CE + w KD, w = ``distill``), optionally with
    noise-consistency regularization over ``consistency_copies`` noisy copies of each image
    (``consistency`` = lambda, ``consistency_entropy`` = eta; Jeong & Shin 2020); ``precision``
    bf16 runs the fine-tuning's forward passes under bfloat16 autocast (grids in float32);
    ``quant_kernels`` "compiled" fuses LSQ's fake quantization in training (``quant.kernels``)."""

    checkpoint: str
    data: str = "embedded"
    policy: str | None = None
    bits: str | None = None
    first_last: int | None = None
    method: str = "lsq"
    epochs: int = 1
    lr: float = 0.01
    batch_size: int = 128
    weight_decay: float = 5e-4
    train_images: int | None = None
    eval_images: int = 1000
    sigma: float | None = None
    dq_beta: float = 0.0
    act_bound: float | None = None
    pact_lambda: float = 1e-4
    distill: float = 0.0
    distill_temperature: float = 1.0
    consistency: float = 0.0
    consistency_copies: int = 2
    consistency_entropy: float = 0.5
    precision: str = "fp32"
    quant_kernels: str = "eager"
    seed: int = 0
    device: str = "auto"
    recipe: str | None = None           # the QAT_RECIPES entry the values came from (a record)

    def __post_init__(self) -> None:
        if self.recipe is not None:
            qat_recipe(self.recipe)
        if (self.policy is None) == (self.bits is None):
            raise RobustqError("give exactly one of --policy FILE or --bits W/A")
        check_method(self.method)
        checks = [(self.epochs >= 0, f"--epochs must be >= 0, got {self.epochs}"),
                  (self.act_bound is None or self.act_bound > 0,
                   f"--act-bound must be > 0, got {self.act_bound}"),
                  (self.dq_beta >= 0, f"--dq-beta must be >= 0, got {self.dq_beta}"),
                  (self.train_images is None or self.train_images >= 1,
                   f"--train-images must be >= 1, got {self.train_images}"),
                  *consistency_checks(self.consistency, self.consistency_copies,
                                      self.consistency_entropy,
                                      lambda field: "--" + field.replace("_", "-")),
                  (self.precision in PRECISIONS,
                   f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")]
        require(checks)
        check_kernels(self.quant_kernels, "--quant-kernels")
        if self.sigma is not None:
            check_sigma(self.sigma, "--sigma", allow_zero=True)

    @classmethod
    def from_recipe(cls, recipe: str, **options: Any) -> QuantizeJob:
        """A job with the named recipe's values, ``options`` overriding them."""
        return cls(**{**qat_recipe(recipe), **options, "recipe": recipe})

    def resolve_policy(self, model: torch.nn.Module) -> Policy:
        """The policy file read against ``model``, or the uniform policy of ``bits``."""
        return resolve_policy(model, self.policy, self.bits, self.first_last)

    def train_config(self, card: ModelCard, sigma: float) -> TrainConfig:
        """The fine-tuning as a training config (at least one epoch; crops and flips by image
        type)."""
        return TrainConfig(arch=card.arch, epochs=max(self.epochs, 1), batch_size=self.batch_size,
                           lr=self.lr, weight_decay=self.weight_decay, schedule="cosine",
                           sigma=sigma, seed=self.seed, eval_images=self.eval_images,
                           distill=self.distill, distill_temperature=self.distill_temperature,
                           consistency=self.consistency,
                           consistency_copies=self.consistency_copies,
                           consistency_entropy=self.consistency_entropy,
                           precision=self.precision).for_images(card.in_channels)


def resolve_policy(model: torch.nn.Module, policy: str | Path | None, bits: str | None,
                   first_last: int | None, first_input_fp: bool = True) -> Policy:
    """Exactly one of a policy file or uniform ``bits`` "W/A" (or "W"), validated on ``model``;
    ``first_last``: bits of the first and last layers (None: 8; 0: like the rest)."""
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


def plan_quantize(job: QuantizeJob) -> tuple[torch.nn.Module, ModelCard, dict, Policy, float]:
    """The FP model, its card (act bound applied), metadata, the policy, and its BitOPs (%):
    everything ``run_quantize`` checks before it writes anything."""
    model, meta = fp_checkpoint(job.checkpoint, "checkpoint")
    card = with_act_bound(model, ModelCard.from_json(meta["card"]), job.act_bound)
    policy = job.resolve_policy(model)
    shape = (card.in_channels, *card.input_size)
    return model, card, meta, policy, model_cost(model, policy, shape).bitops_percent


def run_quantize(job: QuantizeJob, out: str | Path, resume: bool = False,
                 reporter: TrainReporter | None = None, say: Callable[[str], None] = say_nothing
                 ) -> Trained:
    """Quantize and fine-tune as ``job`` says into ``out`` (model.safetensors with the policy
    and recipe recorded, per-epoch state, run.json), resuming a killed run with ``resume``;
    ``say`` gets one line on the plan, once everything is checked."""
    out = Path(out)
    device = resolve_device(job.device)
    model, card, meta, policy, bitops = plan_quantize(job)
    train_ds, test_ds = fine_tuning_data(job.data, model, job.checkpoint, job.train_images)
    sigma = training_sigma(meta, job.sigma)
    cfg = job.train_config(card, sigma)
    refuse_unasked_resume(out, resume)
    start_run(out, "quantize", job.to_json(), job.seed, {"checkpoint": job.checkpoint})
    say(f"quantizing {card.arch} with {job.method}, BitOPs {bitops:.2f}% of FP32, fine-tuning "
        f"{job.epochs} epoch(s) at sigma={sigma} -> {out}")
    with quant_kernels(job.quant_kernels):
        qmodel, qmeta = quantize_and_finetune(
            model, card, policy, job.method, train_ds, test_ds, cfg, out, resume=resume,
            reporter=reporter, pact_lambda=job.pact_lambda, dq_beta=job.dq_beta,
            base_meta={"checkpoint": str(Path(job.checkpoint).resolve()),
                       "sha256": file_sha256(job.checkpoint), "accuracy": meta.get("accuracy"),
                       "recipe": job.recipe},
            finetune=job.epochs > 0, device=device)
    finish_run(out, {"accuracy": qmeta["accuracy"], "bitops_percent": bitops,
                     "checkpoint": str((out / FINAL_FILE).resolve())})
    return Trained(qmodel, qmeta, out / FINAL_FILE, policy, bitops)
