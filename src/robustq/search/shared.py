"""One weight-sharing quantized model for cheap search episodes.

Fine-tuning every candidate policy (HAQ's and ARQ's episode) is what makes a search slow. Here
one quantized model is trained once, each step with a random per-layer policy (LSQ with one
learned step per bit-width, ``quant.quantizers.SharedLSQ``), so that its weights work at every
policy the search can visit. An episode then only re-bits this model in place and re-estimates
its BatchNorm statistics on a few noisy training images (``rebit``), the standard recipe of
one-shot quantization search (e.g. APQ, Wang et al. 2020; OQA, Shen et al. 2021): seconds
instead of a fine-tune.

``run_shared(SharedJob)`` trains it (resumable per epoch, distilled from the FP model like the
deploy recipe, run.json recorded); the file it writes is a quantized checkpoint
(``lsq_shared``) holding the reference policy (uniform ``reference_bits``) and every width's
steps. Whether its episode rewards rank policies like fully trained ones is measured, not
assumed (docs/benchmarks.md).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustq.data.dataset import ImageDataset
from robustq.models import ModelCard
from robustq.models.train import (
    FINAL_FILE,
    TrainConfig,
    TrainReporter,
    consistency_checks,
    fit,
    refuse_unasked_resume,
    train,
)
from robustq.quant.checkpoint import load_model, save_quantized
from robustq.quant.finetune import calibration_batches
from robustq.quant.kernels import check_kernels, quant_kernels
from robustq.quant.layers import quantizable_layers
from robustq.quant.policy import Policy, uniform_policy
from robustq.quant.quantize import quantize, set_policy
from robustq.quant.workflow import fine_tuning_data, fp_checkpoint, training_sigma
from robustq.search.env import BitOpsBudget, LayerTable
from robustq.utils.config import JsonConfig
from robustq.utils.device import module_device, resolve_device
from robustq.utils.errors import RobustqError
from robustq.utils.io import file_sha256
from robustq.utils.progress import say_nothing
from robustq.utils.records import finish_run, start_run
from robustq.utils.validate import check_sigma, require

SHARED_METHOD = "lsq_shared"


def sample_bits(table: LayerTable, rng: np.random.Generator, budgets: tuple[float, float],
                b_min: int, b_max: int, uniform_share: float) -> tuple[np.ndarray, np.ndarray]:
    """A random policy as the search visits them: per-layer weight and activation bits drawn
    uniformly from [b_min, b_max] (with probability ``uniform_share`` one width for every layer
    instead), then lowered as the search lowers them (``BitOpsBudget.enforce``) to a budget
    drawn uniformly from ``budgets`` (% of FP32 BitOPs)."""
    k = len(table)
    if rng.random() < uniform_share:
        w = np.full(k, rng.integers(b_min, b_max + 1))
        a = w.copy()
    else:
        w, a = rng.integers(b_min, b_max + 1, k), rng.integers(b_min, b_max + 1, k)
    return BitOpsBudget(float(rng.uniform(*budgets)), b_min, b_max).enforce(table, w, a)


class RandomPolicies(nn.Module):
    """``net`` re-bitted before every training forward with ``sample_bits`` (step ``k``'s policy
    from a generator seeded by (seed, k), k kept in a buffer: a resumed run draws the same
    policies); in eval mode ``net`` runs at the ``reference`` policy."""

    def __init__(self, net: nn.Module, table: LayerTable, reference: Policy, seed: int,
                 draw: Callable[[LayerTable, np.random.Generator], tuple[np.ndarray, np.ndarray]]
                 ) -> None:
        super().__init__()
        self.net, self.table, self.reference, self.seed, self.draw = net, table, reference, seed, draw
        self.num_classes = net.num_classes
        self.register_buffer("steps_drawn", torch.tensor(0, dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            rng = np.random.default_rng((self.seed, int(self.steps_drawn)))
            set_policy(self.net, self.table.policy(*self.draw(self.table, rng)))
            self.steps_drawn += 1
        else:
            set_policy(self.net, self.reference)
        return self.net(x)


@dataclass(frozen=True)
class SharedJob(JsonConfig):
    """Train one weight-sharing LSQ model from the FP ``checkpoint``: ``epochs`` over
    ``train_images`` training images (default all) at ``sigma`` (default the checkpoint's),
    cosine from ``lr``, loss (1 - w) CE + w KD from the FP model at ``distill_temperature``
    (w = ``distill``), plus noise-consistency regularization at ``consistency`` (lambda; 0 =
    off; ``models.train.consistency_loss``), so that the model the episodes score was trained
    with the loss of the final models' recipe (``deploy-cr``); each step at a random policy
    (``sample_bits``) within ``budgets`` (% of FP32 BitOPs) and bits [``b_min``, ``b_max``],
    the same policy for every noisy copy of a step's images; evaluated and saved at uniform
    ``reference_bits`` (every layer, the image input included). ``quant_kernels``: the fake
    quantization's training kernels (``quant.kernels``; "compiled" fuses them)."""

    checkpoint: str
    data: str = "embedded"
    budgets: tuple[float, float] = (0.8, 2.6)
    b_min: int = 2
    b_max: int = 8
    uniform_share: float = 0.25
    reference_bits: int = 4
    epochs: int = 3
    lr: float = 0.01
    batch_size: int = 128
    train_images: int | None = None
    eval_images: int = 1000
    distill: float = 0.5
    distill_temperature: float = 2.0
    consistency: float = 0.0
    consistency_copies: int = 2
    consistency_entropy: float = 0.5
    quant_kernels: str = "eager"
    sigma: float | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        lo, hi = self.budgets
        checks = [(2 <= self.b_min <= self.b_max <= 8,
                   f"need 2 <= b_min <= b_max <= 8, got {self.b_min}, {self.b_max}"),
                  (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi <= 100,
                   f"budgets must be 0 < low <= high <= 100 (% of FP32 BitOPs), got {lo}, {hi}"),
                  (0 <= self.uniform_share <= 1,
                   f"uniform_share must lie in [0, 1], got {self.uniform_share}"),
                  (self.b_min <= self.reference_bits <= self.b_max,
                   f"reference_bits must lie in [b_min, b_max], got {self.reference_bits}"),
                  (self.train_images is None or self.train_images >= 1,
                   f"train_images must be >= 1, got {self.train_images}"),
                  *consistency_checks(self.consistency, self.consistency_copies,
                                      self.consistency_entropy,
                                      lambda field: "--" + field.replace("_", "-"))]
        require(checks)
        check_kernels(self.quant_kernels, "--quant-kernels")
        if self.sigma is not None:
            check_sigma(self.sigma, "sigma", allow_zero=True)

    def train_config(self, card: ModelCard, sigma: float) -> TrainConfig:
        return TrainConfig(arch=card.arch, epochs=self.epochs, batch_size=self.batch_size,
                           lr=self.lr, schedule="cosine", sigma=sigma, seed=self.seed,
                           eval_images=self.eval_images, distill=self.distill,
                           distill_temperature=self.distill_temperature,
                           consistency=self.consistency,
                           consistency_copies=self.consistency_copies,
                           consistency_entropy=self.consistency_entropy
                           ).for_images(card.in_channels)

    def draw(self, table: LayerTable, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return sample_bits(table, rng, self.budgets, self.b_min, self.b_max, self.uniform_share)


def run_shared(job: SharedJob, out: str | Path, resume: bool = False,
               reporter: TrainReporter | None = None, say: Callable[[str], None] = say_nothing
               ) -> dict[str, Any]:
    """Train the weight-sharing model of ``job`` into ``out`` (``model.safetensors``, per-epoch
    state, run.json); everything is checked before anything is written. Returns the training
    metadata (accuracy at the reference policy, without BatchNorm re-estimation)."""
    out = Path(out)
    device = resolve_device(job.device)
    fp, meta = fp_checkpoint(job.checkpoint, "checkpoint")
    card = ModelCard.from_json(meta["card"])
    table = LayerTable(fp, (card.in_channels, *card.input_size))
    BitOpsBudget(job.budgets[0], job.b_min, job.b_max).check(table)
    train_ds, test_ds = fine_tuning_data(job.data, fp, job.checkpoint, job.train_images)
    sigma = training_sigma(meta, job.sigma)
    cfg = job.train_config(card, sigma)
    refuse_unasked_resume(out, resume)
    reference = uniform_policy(fp, job.reference_bits, job.reference_bits, None,
                               first_input_fp=False)
    qmodel = quantize(fp, reference, SHARED_METHOD,
                      calibration=calibration_batches(train_ds, sigma=sigma, seed=job.seed))
    net = RandomPolicies(qmodel, table, reference, job.seed, job.draw)
    start_run(out, "shared", job.to_json(), job.seed, {"checkpoint": job.checkpoint})
    say(f"training one weight-sharing {card.arch} ({len(table)} layers, bits {job.b_min}-"
        f"{job.b_max}, budgets {job.budgets[0]}-{job.budgets[1]}% BitOPs) for {job.epochs} "
        f"epoch(s) at sigma={sigma} -> {out}")
    base = {"checkpoint": str(Path(job.checkpoint).resolve()),
            "sha256": file_sha256(job.checkpoint), "shared": job.to_json()}

    def save(path: Path, m: RandomPolicies, c: ModelCard, info: dict[str, Any]) -> Path:
        set_policy(m.net, m.reference)
        return save_quantized(path, m.net, c, {**info, "quant_finetune": {
            "method": SHARED_METHOD, "base": base}})

    with quant_kernels(job.quant_kernels):
        info = train(net, card, train_ds, test_ds, cfg, out, resume=resume, reporter=reporter,
                     save=save, teacher=fp.eval(), device=device)
    finish_run(out, {"accuracy": info["accuracy"], "checkpoint": str((out / FINAL_FILE).resolve())})
    return info


def load_shared(path: str | Path, fp: nn.Module) -> nn.Module:
    """A weight-sharing model trained by ``run_shared`` for the FP model ``fp`` (same
    architecture), in eval mode; anything else is refused naming the file."""
    model, meta = load_model(path)
    if (meta.get("quant") or {}).get("method") != SHARED_METHOD:
        raise RobustqError(f"{path}: not a weight-sharing model (method {SHARED_METHOD}); "
                           "train one with `robustq shared`")
    def shapes(m: nn.Module) -> dict[str, tuple[int, ...]]:
        return {n: tuple(layer.weight.shape) for n, layer in quantizable_layers(m).items()}

    if shapes(fp) != shapes(model):
        raise RobustqError(f"{path}: its architecture is not the checkpoint's")
    return model


@torch.no_grad()
def reestimate_bn(model: nn.Module, batches: Sequence[torch.Tensor]) -> None:
    """Replace every BatchNorm's running mean and variance by their average over ``batches``
    (train-mode statistics, equal weight per batch; no parameter changes); eval mode after."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    device = module_device(model)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                       # cumulative average over the batches
    try:
        model.train()
        for x in batches:
            model(x.to(device))
    finally:
        for m, mom in zip(norms, momenta, strict=True):
            m.momentum = mom
        model.eval()


def rebit(model: nn.Module, policy: Policy, bn_batches: Sequence[torch.Tensor]) -> nn.Module:
    """The weight-sharing ``model`` at ``policy``, its BatchNorm statistics re-estimated on
    ``bn_batches`` (noisy training images); in place, in eval mode. The result depends on
    ``policy`` and the batches only, never on the policies visited before."""
    set_policy(model, policy)
    reestimate_bn(model, bn_batches)
    return model


def adapt_config(sigma: float, seed: int = 0, lr: float = 0.01, batch_size: int = 128,
                 distill: float = 1.0, consistency: float = 3.0) -> TrainConfig:
    """A few steps of the final models' ``deploy-cr`` loss for a re-bitted candidate: one epoch
    at ``sigma``, cosine from ``lr``, distillation (w = ``distill``, T = 2) and noise-consistency
    regularization at ``consistency`` (2 copies), crops and flips as in training."""
    return TrainConfig(epochs=1, batch_size=batch_size, lr=lr, schedule="cosine", sigma=sigma,
                       seed=seed, eval_images=0, distill=distill, distill_temperature=2.0,
                       consistency=consistency)


def adapt(model: nn.Module, ds: ImageDataset, cfg: TrainConfig, teacher: nn.Module | None,
          seed: int = 0) -> nn.Module:
    """A copy of the re-bitted ``model`` (``rebit``) fine-tuned by ``cfg`` over ``ds`` at its
    current policy, every random choice from one generator seeded by ``seed``; in eval mode.
    ``model`` itself (the weight-sharing model every episode re-bits) is left unchanged."""
    q = copy.deepcopy(model)
    fit(q, ds, cfg, generator=torch.Generator().manual_seed(seed), teacher=teacher)
    return q.eval()
