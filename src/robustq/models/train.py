"""Noise-augmented SGD training with per-epoch checkpoints and exact resume.

Every random choice of epoch ``e`` (shuffle order, crops, flips, noise) comes from a generator
seeded by ``(seed, e)``, so a run killed after epoch ``e`` and resumed is identical to one that
was never interrupted: at most the epoch in progress is lost.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustq.data.dataset import ImageDataset
from robustq.models.augment import gaussian_noise, random_crop, random_flip
from robustq.models.base import ImageClassifier
from robustq.models.checkpoint import ModelCard, load_tensors, save_checkpoint, save_tensors
from robustq.models.evaluate import evaluate
from robustq.utils.config import from_dict
from robustq.utils.device import module_device, warn_if_emulated_bf16
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_text
from robustq.utils.progress import silent
from robustq.utils.provenance import provenance
from robustq.utils.validate import check_sigma, require

SCHEDULES = ("cosine", "step", "onecycle", "constant")
PRECISIONS = ("fp32", "bf16")
STATE_FILE = "train_state.safetensors"
FINAL_FILE = "model.safetensors"


def consistency_checks(weight: float, copies: int, entropy: float,
                       name: Callable[[str], str] = lambda field: field
                       ) -> list[tuple[bool, str]]:
    """The (condition, message) checks of the consistency options, each named by
    ``name(field)`` (a config key, or a command-line flag)."""
    return [(weight >= 0, f"{name('consistency')} must be >= 0, got {weight}"),
            (copies >= 2, f"{name('consistency_copies')} must be >= 2, got {copies}"),
            (entropy >= 0, f"{name('consistency_entropy')} must be >= 0, got {entropy}")]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run; ``sigma`` is in [0, 1] pixel units."""

    arch: str = "small_cnn"            # the defaults of `robustq train` are these
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True              # Nesterov momentum (when momentum > 0)
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    sigma: float = 0.25
    crop_padding: int | None = None    # random-crop padding; None: 4 px for RGB, 2 otherwise
    flip: bool | None = None           # horizontal flips; None: for RGB images only
    seed: int = 0
    channels_last: bool = True
    eval_images: int = 2000
    max_images: int | None = None      # train on the first N images of a class-balanced spread
    init: str | None = None            # warm start: weights of this checkpoint (resolved path)
    init_sha256: str | None = None     # ... and its content hash, so the run is reproducible
    distill: float = 0.0               # weight of distillation from a teacher (QAT: the FP model)
    distill_temperature: float = 1.0   # softmax temperature of the distillation targets
    consistency: float = 0.0           # lambda of noise-consistency regularization (0: off)
    consistency_copies: int = 2        # m noisy copies of each image per step, when it is on
    consistency_entropy: float = 0.5   # eta: weight of the entropy of the copies' mean output
    precision: str = "fp32"            # bf16: the model's forward pass under bfloat16 autocast

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0 <= self.momentum < 1, f"momentum must lie in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, "
                                         f"got {self.schedule!r}"),
            (self.crop_padding is None or self.crop_padding >= 0,
             f"crop_padding must be >= 0, got {self.crop_padding}"),
            (self.eval_images >= 0, f"eval_images must be >= 0, got {self.eval_images}"),
            (self.max_images is None or self.max_images >= 1,
             f"max_images must be >= 1, got {self.max_images}"),
            (0 <= self.distill <= 1, f"distill must lie in [0, 1], got {self.distill}"),
            (0 < self.distill_temperature <= 100,
             f"distill_temperature must lie in (0, 100], got {self.distill_temperature}"),
            *consistency_checks(self.consistency, self.consistency_copies,
                                self.consistency_entropy),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, "
                                           f"got {self.precision!r}"),
        ]
        check_sigma(self.sigma, "sigma", allow_zero=True)
        require(checks)

    def for_images(self, channels: int) -> TrainConfig:
        """This config with the augmentation left to the image type made explicit."""
        rgb = channels == 3
        return dataclasses.replace(
            self, crop_padding=(4 if rgb else 2) if self.crop_padding is None else self.crop_padding,
            flip=rgb if self.flip is None else self.flip)

    @property
    def copies(self) -> int:
        """Noisy copies of each training image per step: ``consistency_copies`` when the
        consistency regularizer is on, else 1."""
        return self.consistency_copies if self.consistency > 0 else 1

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        return from_dict(cls, d, "training")


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate at optimizer step ``step`` of ``total`` (per-step, so resume is exact)."""
    t = step / max(total, 1)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        return cfg.lr * (0.1 ** ((t >= 0.5) + (t >= 0.75)))
    # one-cycle (Smith 2018, as torch's OneCycleLR): cosine up from lr/25 over 30%, then
    # cosine down to lr/1e4.
    lo, hi, end, warm = cfg.lr / 25, cfg.lr, cfg.lr / 25 / 1e4, 0.3
    if t < warm:
        return hi + (lo - hi) * 0.5 * (1 + math.cos(math.pi * t / warm))
    return end + (hi - end) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


class TrainReporter:
    """Hooks for progress display; the library itself never prints."""

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None: ...
    def step(self, loss: float) -> None: ...
    def end_epoch(self, record: dict[str, Any]) -> None: ...


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _save_state(path: Path, model: nn.Module, opt: torch.optim.Optimizer, meta: dict) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            buf = opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                tensors[f"momentum.{names[id(p)]}"] = buf
    save_tensors(path, tensors, meta)


def _load_state(path: Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    tensors, meta = load_tensors(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    params = dict(model.named_parameters())
    for k, v in tensors.items():
        if k.startswith("momentum."):
            opt.state[params[k[9:]]]["momentum_buffer"] = v.clone().to(params[k[9:]].device)
    return meta


def _final_evaluation(model: nn.Module, test_ds: ImageDataset, cfg: TrainConfig) -> dict:
    with silent().phase(f"final evaluation on {len(test_ds)} test images"):
        return evaluate(model, test_ds, cfg.sigma, seed=cfg.seed, channels_last=cfg.channels_last)


def _check_inputs(model: nn.Module, train_ds: ImageDataset, cfg: TrainConfig,
                  teacher: nn.Module | None) -> None:
    if (cfg.distill > 0) != (teacher is not None):
        raise RobustqError("distillation needs a teacher and a distill weight > 0, both or neither")
    if train_ds.num_classes != model.num_classes:
        raise RobustqError(f"{train_ds.source}: {train_ds.num_classes} classes but the model "
                           f"has {model.num_classes} outputs")


def train(model: ImageClassifier, card: ModelCard, train_ds: ImageDataset,
          test_ds: ImageDataset, cfg: TrainConfig, out_dir: str | Path, resume: bool = False,
          reporter: TrainReporter | None = None,
          extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
          save: Callable[..., Path] = save_checkpoint, teacher: nn.Module | None = None,
          device: torch.device | None = None) -> dict[str, Any]:
    """Train ``model`` in place, checkpointing to ``out_dir`` every epoch.

    Writes ``train_state.safetensors`` (weights + momentum, to resume), ``log.jsonl`` (one line
    per epoch) and, at the end, ``model.safetensors`` with metadata: card, config, sigma,
    accuracies on the full test split (clean and under sigma noise), seed, commit, versions.
    ``extra_loss(model)`` is added to the cross-entropy (e.g. a Lipschitz regularizer);
    ``save(path, model, card, meta)`` writes the final checkpoint (quantized models bring their
    own). With ``cfg.distill`` = w > 0 the loss is (1 - w) CE + w T^2 KL(teacher || model) at
    temperature T, the teacher (frozen, eval mode) seeing the very noisy batch the model sees.
    ``device`` (default: where the model is) runs the model; batches are augmented on the CPU,
    as everywhere, so a run's images are the same on every device. Returns the final metadata.
    """
    _check_inputs(model, train_ds, cfg, teacher)
    cfg = cfg.for_images(train_ds.image_shape[0])
    reporter = reporter or TrainReporter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_provenance = provenance(cfg.seed, cfg.to_json())     # the code that starts the run
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(device, memory_format=mf)
    warn_if_emulated_bf16(cfg.precision, module_device(model))
    opt = _optimizer(model, cfg)
    history, start_epoch, elapsed = _restore(out, model, opt, cfg, resume)
    if cfg.max_images is not None and cfg.max_images < len(train_ds):
        train_ds = train_ds.spread(cfg.max_images)
    data = train_ds.tensors()
    eval_ds = test_ds.spread(cfg.eval_images)      # every class, even in class-sorted data
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        record = _run_epoch(model, opt, cfg, data, epoch, _epoch_generator(cfg.seed, epoch),
                            reporter, extra_loss, teacher)
        seconds = time.perf_counter() - t0
        elapsed += seconds
        record["epoch_s"] = round(seconds, 2)
        _add_held_out_accuracy(record, model, eval_ds, cfg)
        refuse_divergence(model, record)
        history.append(record)
        _save_state(out / STATE_FILE, model, opt, {"config": cfg.to_json(), "card": card.to_json(),
                                                   "epoch": epoch + 1, "history": history,
                                                   "elapsed_s": elapsed})
        atomic_write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        reporter.end_epoch(record)
    final = _final_evaluation(model, test_ds, cfg)
    meta = {
        "dataset": {"source": train_ds.source, "train_images": len(train_ds),
                    "test_images": len(test_ds), "classes": list(train_ds.classes)},
        "sigma": cfg.sigma, "epochs": cfg.epochs, "accuracy": final,
        "train_time_s": round(elapsed, 1), "train_config": cfg.to_json(), "history": history,
        "provenance": run_provenance,
    }
    model.to(memory_format=torch.contiguous_format)
    save(out / FINAL_FILE, model, card, meta)
    return meta


def _add_held_out_accuracy(record: dict[str, Any], model: nn.Module, eval_ds: ImageDataset,
                           cfg: TrainConfig) -> None:
    """The epoch's accuracy on the held-out evaluation images (clean, and under sigma noise),
    added to its ``record``; nothing when there are none."""
    if len(eval_ds):
        ev = evaluate(model, eval_ds, cfg.sigma, seed=cfg.seed, channels_last=cfg.channels_last)
        record.update(test_clean_accuracy=ev["clean_accuracy"],
                      test_noisy_accuracy=ev.get("noisy_accuracy"), eval_images=ev["n"])


def refuse_divergence(model: nn.Module, record: dict[str, Any]) -> None:
    """Raise when the epoch of ``record`` left a non-finite loss, weight or buffer (BatchNorm's
    running variance overflows first, when activations blow up): the run diverged. Called
    before the epoch's state is written, so the last written state is the last finite one and
    no non-finite model is ever saved; RobustMQ marks such a model NC (did not converge)."""
    bad = [n for n, t in (*model.named_parameters(), *model.named_buffers())
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad or not math.isfinite(record["train_loss"]):
        what = (f"{len(bad)} tensor(s), first {bad[0]}" if bad
                else f"train loss {record['train_loss']}")
        raise RobustqError(f"training diverged in epoch {record['epoch']} (non-finite {what}); "
                           "nothing of that epoch was written: a lower learning rate or "
                           "another method may converge")


def fit(model: nn.Module, train_ds: ImageDataset, cfg: TrainConfig,
        generator: torch.Generator | None = None,
        reporter: TrainReporter | None = None,
        teacher: nn.Module | None = None) -> list[dict[str, Any]]:
    """``cfg.epochs`` epochs of :func:`train`'s loop on ``model`` in place, in memory: no files,
    no evaluation, no resume (for short fine-tunes such as a search episode's). ``generator``
    draws every random choice of all epochs from one stream (default: :func:`train`'s per-epoch
    generators); ``teacher``: distill from it at ``cfg.distill`` as :func:`train` does. The
    model is left in train mode on its own device; returns the epoch records."""
    _check_inputs(model, train_ds, cfg, teacher)
    cfg = cfg.for_images(train_ds.image_shape[0])
    warn_if_emulated_bf16(cfg.precision, module_device(model))
    opt, data, reporter = _optimizer(model, cfg), train_ds.tensors(), reporter or TrainReporter()
    return [_run_epoch(model, opt, cfg, data, e, generator or _epoch_generator(cfg.seed, e),
                       reporter, None, teacher) for e in range(cfg.epochs)]


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum unless ``cfg.nesterov`` is off); weight decay on conv/linear
    weights only."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov and cfg.momentum > 0)


def refuse_unasked_resume(out: Path, resume: bool) -> None:
    """Refuse to start over a run in ``out`` (its per-epoch state exists) unless ``resume``:
    called before anything is written, so an earlier run is never overwritten by mistake."""
    if not resume and (out / STATE_FILE).is_file():
        raise RobustqError(f"{out}: holds an earlier run; pass --resume to continue it or "
                           "use a new output directory")


def same_config(recorded: Any, cfg: TrainConfig) -> bool:
    """Whether a state file's recorded configuration is ``cfg``. Options added to TrainConfig
    after the state was written take their defaults (a run started by an older robustq
    resumes unless the new option is set otherwise)."""
    try:
        return TrainConfig.from_json(recorded) == cfg
    except (RobustqError, TypeError, AttributeError):
        return False


def _restore(out: Path, model: nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig,
             resume: bool) -> tuple[list[dict[str, Any]], int, float]:
    """(history, first epoch to run, seconds so far) of a resumed run, or of a new one."""
    state_path = out / STATE_FILE
    if resume and state_path.is_file():
        meta = _load_state(state_path, model, opt)
        if not same_config(meta.get("config"), cfg):
            raise RobustqError(f"{state_path}: was written with another configuration; "
                               "resume with the same options or use a new output directory")
        history = meta["history"]
        # the state is the truth: a kill between it and the log left the log one line short
        atomic_write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        return history, meta["epoch"], meta["elapsed_s"]
    if state_path.exists():
        raise RobustqError(f"{out}: holds an earlier run; pass --resume to continue it or "
                           "choose a new output directory")
    return [], 0, 0.0


def distillation_loss(logits: torch.Tensor, teacher: nn.Module, x: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """T^2 KL(softmax(teacher(x)/T) || softmax(logits/T)), batch mean (Hinton et al. 2015);
    the teacher is run in eval mode without gradients."""
    teacher.eval()
    with torch.no_grad():
        target = F.log_softmax(teacher(x) / temperature, dim=1)
    student = F.log_softmax(logits / temperature, dim=1)
    return F.kl_div(student, target, reduction="batchmean", log_target=True) * temperature ** 2


def consistency_loss(logits: torch.Tensor, copies: int, weight: float,
                     entropy_weight: float) -> torch.Tensor:
    """Noise-consistency regularization (Jeong & Shin, NeurIPS 2020): ``logits`` of ``copies``
    noisy copies of each image, copy-major (copy c of image i in row c * B + i). With p_c the
    copies' softmax and p their mean: ``weight`` * mean_c KL(p || p_c) + ``entropy_weight`` *
    H(p), batch mean. It rewards a classifier whose prediction does not change with the noise,
    i.e. a high top-class probability pA under noise, which is what the certified radius grows
    with."""
    log_p = F.log_softmax(logits, dim=1).view(copies, -1, logits.shape[1])
    mean_p = log_p.exp().mean(0)
    log_mean = mean_p.clamp_min(1e-12).log()
    kl = (mean_p * (log_mean - log_p)).sum(-1).mean()
    entropy = -(mean_p * log_mean).sum(-1).mean()
    return weight * kl + entropy_weight * entropy


def _noisy_batch(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Crop, flip, then ``cfg.copies`` copies of the batch (copy-major), each its own noise."""
    x = random_crop(x, cfg.crop_padding, gen)
    if cfg.flip:
        x = random_flip(x, gen)
    if cfg.copies > 1:
        x = x.repeat(cfg.copies, 1, 1, 1)
    return gaussian_noise(x, cfg.sigma, gen)


def _batch_loss(model: nn.Module, cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor,
                teacher: nn.Module | None,
                extra_loss: Callable[[nn.Module], torch.Tensor] | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of one noisy batch: cross-entropy, blended with distillation when there
    is a teacher, plus the consistency regularizer and ``extra_loss``. With ``cfg.precision``
    bf16 the student's forward pass runs under bfloat16 autocast (convolutions and linear layers
    in bfloat16, about twice as fast a step on a CPU with AVX-512 BF16: docs/benchmarks.md);
    weights, gradients, optimizer state, the teacher and every loss stay float32."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        logits = model(x)
    logits = logits.float()
    loss = F.cross_entropy(logits, y)
    if teacher is not None:
        loss = (1 - cfg.distill) * loss + cfg.distill * distillation_loss(
            logits, teacher, x, cfg.distill_temperature)
    if cfg.copies > 1:
        loss = loss + consistency_loss(logits, cfg.copies, cfg.consistency, cfg.consistency_entropy)
    if extra_loss is not None:
        loss = loss + extra_loss(model)
    return loss, logits


def _run_epoch(model: nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig,
               data: tuple[torch.Tensor, torch.Tensor], epoch: int, gen: torch.Generator,
               reporter: TrainReporter, extra_loss: Callable[[nn.Module], torch.Tensor] | None,
               teacher: nn.Module | None = None) -> dict[str, Any]:
    """One epoch of noisy SGD, every random choice (order, crops, flips, noise) from ``gen``;
    with the consistency regularizer each step sees ``cfg.copies`` noisy copies of its images
    (train accuracy is then over the copies)."""
    x_all, y_all = data
    n = len(y_all)
    steps = math.ceil(n / cfg.batch_size)
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    perm = torch.randperm(n, generator=gen)
    device = module_device(model)
    if teacher is not None:
        teacher.to(device)
    model.train()
    reporter.start_epoch(epoch, cfg.epochs, steps)
    loss_sum = correct = 0.0
    for i in range(steps):
        idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
        x = _noisy_batch(x_all[idx], cfg, gen).to(device).contiguous(memory_format=mf)
        y = y_all[idx].repeat(cfg.copies).to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, epoch * steps + i, steps * cfg.epochs)
        loss, logits = _batch_loss(model, cfg, x, y, teacher, extra_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(loss.detach()) * len(idx)
        correct += float((logits.argmax(1) == y).sum()) / cfg.copies
        reporter.step(float(loss.detach()))
    return {"epoch": epoch + 1, "train_loss": loss_sum / n, "train_accuracy": correct / n,
            "lr": opt.param_groups[0]["lr"]}
