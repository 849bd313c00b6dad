"""Evaluating one candidate policy: quantize, short noisy fine-tune, reward on held-out data.

The held-out split is carved from the *training* split (``split_train``): a fine-tuning subset
and a disjoint held-out subset, so the test split is only touched by the final evaluation.

Rewards (spec 03; registered by name, ``get_reward``):
- ``arq``: ``scale * (ACR_q - ACR_fp) + acc_weight * (acc_q - acc_fp)``, ACR of the quantized
  smoothed classifier by IRS against the FP model's cache on the held-out certification images,
  accuracies (fractions) of the base classifiers on the held-out images; scale 10, acc_weight 0
  by default.
- ``haq``: ``0.1 * (top1_q - top1_fp)`` with top-1 in percent (HAQ's reward), clean base
  classifiers on the held-out images.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robustq.certify.run import CertifyConfig, irs_certify_dataset
from robustq.data.dataset import ImageDataset
from robustq.models.checkpoint import ModelCard
from robustq.models.evaluate import evaluate
from robustq.models.train import TrainConfig, fit
from robustq.quant.checkpoint import save_quantized
from robustq.quant.finetune import calibration_batches
from robustq.quant.policy import Policy
from robustq.quant.quantize import quantize
from robustq.quant.reusable import ReusableInference
from robustq.utils.errors import RobustqError


def split_train(train: ImageDataset, finetune_images: int, holdout_images: int,
                seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Disjoint fine-tuning and held-out subsets of the training split (seeded permutation)."""
    if finetune_images + holdout_images > len(train):
        raise RobustqError(f"{finetune_images} fine-tuning + {holdout_images} held-out images "
                           f"exceed the {len(train)} training images")
    perm = np.random.default_rng(seed).permutation(len(train))
    return (train.subset(np.sort(perm[:finetune_images])),
            train.subset(np.sort(perm[finetune_images:finetune_images + holdout_images])))


def episode_config(sigma: float, lr: float = 1e-3, batch_size: int = 128,
                   seed: int = 0) -> TrainConfig:
    """HAQ's short fine-tune, noisy for smoothing: one epoch of plain SGD (momentum 0.9, no
    Nesterov, no weight decay) at the constant ``lr``, random flips for RGB images and
    N(0, sigma^2) noise, no crops. A :class:`TrainConfig`: the same loop as every training."""
    return TrainConfig(epochs=1, batch_size=batch_size, lr=lr, momentum=0.9, nesterov=False,
                       weight_decay=0.0, schedule="constant", sigma=sigma, crop_padding=0,
                       seed=seed, eval_images=0)


def finetune(qmodel: nn.Module, ds: ImageDataset, sigma: float, lr: float = 1e-3,
             batch_size: int = 128, seed: int = 0) -> nn.Module:
    """The episode recipe (:func:`episode_config`) on ``qmodel`` over ``ds``, in place; every
    random choice from one generator seeded by ``seed``. Returns the model in eval mode."""
    if len(ds) > 0:
        # one stream seeded by ``seed`` (not train's per-epoch seeding): the episodes of
        # searches run before the loops were merged reproduce exactly
        fit(qmodel, ds, episode_config(sigma, lr, batch_size, seed),
            generator=torch.Generator().manual_seed(seed))
    return qmodel.eval()


def build_quantized(fp: nn.Module, policy: Policy, method: str, ft_ds: ImageDataset, sigma: float,
                    lr: float, seed: int) -> nn.Module:
    """Quantize ``fp`` with ``policy`` (calibrated on noisy fine-tuning images) and fine-tune."""
    q = quantize(fp, policy, method, calibration=calibration_batches(ft_ds, sigma=sigma, seed=seed))
    return finetune(q, ft_ds, sigma, lr, seed=seed)


@dataclass(frozen=True)
class RewardContext:
    """What a reward needs: the held-out images, sigma, FP reference numbers and (for ARQ) the
    FP model's IRS cache with the certification settings it was made with."""

    holdout: ImageDataset
    sigma: float
    fp_accuracy: float                 # clean top-1 (fraction) of the FP base classifier
    fp_acr: float | None = None
    cache_dir: Path | None = None
    cert_cfg: CertifyConfig | None = None
    cert_images: ImageDataset | None = None
    device: torch.device | None = None        # where certification draws noise (default CPU)
    engine: str = "eager"                      # how ARQ's reward samples (``REWARD_ENGINES``)
    card: ModelCard | None = None              # the model's card (the onnx engine exports)


# eager: the fake-quantized candidate itself; onnx: the candidate exported as the deployed
# integer model (``robustq export``) and run in ONNX Runtime (a certificate for the deployed
# classifier, which agrees with the fake-quantized one up to rounding; ~1x eager here once the
# per-candidate export is counted); compile: the candidate's frozen copy loaded into one
# torch.compile template per process (``quant.reusable``: the candidate's function up to float
# rounding, ~1.5x); bf16: the same template with bfloat16 convolutions (a close classifier, ~2.5x)
REWARD_ENGINES = ("eager", "onnx", "compile", "bf16")
_TEMPLATE_PRECISION = {"compile": "fp32", "bf16": "bf16"}
_REUSABLE: dict[str, ReusableInference] = {}      # per process: the compile and bf16 templates


def sampled_candidate(q: nn.Module, ctx: RewardContext, work: Path) -> nn.Module:
    """What ARQ's reward samples: ``q``, its copy in a compiled template (valid until the next
    candidate is loaded), or its deployed ONNX model (files written to and removed from
    ``work``)."""
    if ctx.engine == "eager":
        return q
    if ctx.engine in _TEMPLATE_PRECISION:
        if ctx.engine not in _REUSABLE:
            _REUSABLE[ctx.engine] = ReusableInference(_TEMPLATE_PRECISION[ctx.engine])
        return _REUSABLE[ctx.engine](q)
    from robustq.models.onnx_runtime import load_onnx
    from robustq.quant.export import export_onnx

    work.mkdir(parents=True, exist_ok=True)
    ckpt, onnx_file = work / "candidate.safetensors", work / "candidate.onnx"
    save_quantized(ckpt, q, ctx.card, {"sigma": ctx.sigma})
    export_onnx(ckpt, onnx_file)
    deployed, _ = load_onnx(onnx_file)         # the session holds the model: files can go
    ckpt.unlink()
    onnx_file.unlink()
    return deployed


RewardFn = Callable[[nn.Module, RewardContext, Path], tuple[float, dict]]
_REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    def deco(fn: RewardFn) -> RewardFn:
        _REWARDS[name] = fn
        return fn
    return deco


def list_rewards() -> list[str]:
    return sorted(_REWARDS)


def get_reward(name: str) -> RewardFn:
    if name not in _REWARDS:
        raise RobustqError(f"unknown reward {name!r}; known: {', '.join(list_rewards())}")
    return _REWARDS[name]


@register_reward("haq")
def haq_reward(q: nn.Module, ctx: RewardContext, work: Path) -> tuple[float, dict]:
    acc = evaluate(q, ctx.holdout)["clean_accuracy"]
    return 0.1 * 100 * (acc - ctx.fp_accuracy), {"accuracy": acc}


@register_reward("arq")
def arq_reward(q: nn.Module, ctx: RewardContext, work: Path, scale: float = 10.0,
               acc_weight: float = 0.0) -> tuple[float, dict]:
    if ctx.cache_dir is None or ctx.cert_cfg is None or ctx.fp_acr is None:
        raise RobustqError("the ARQ reward needs the FP model's IRS cache")
    acc = evaluate(q, ctx.holdout)["clean_accuracy"]
    t0 = time.perf_counter()
    s = irs_certify_dataset(sampled_candidate(q, ctx, work), ctx.cert_images, ctx.cert_cfg,
                            ctx.cache_dir, work / "irs", device=ctx.device)
    cert_s = time.perf_counter() - t0
    reward = scale * (s["acr"] - ctx.fp_acr) + acc_weight * (acc - ctx.fp_accuracy)
    return reward, {"accuracy": acc, "acr": s["acr"],
                    "smoothed_accuracy": s["smoothed_accuracy"], "certify_s": cert_s}
