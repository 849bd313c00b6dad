"""Quantization-aware fine-tuning: from an FP checkpoint and a policy, fine-tune the quantized
model with the checkpoint's Gaussian noise augmentation (needed for randomized smoothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robustq.data.dataset import ImageDataset
from robustq.models.checkpoint import ModelCard
from robustq.models.evaluate import evaluate
from robustq.models.train import FINAL_FILE, TrainConfig, TrainReporter, train
from robustq.quant.checkpoint import save_quantized
from robustq.quant.defensive import lipschitz_penalty
from robustq.quant.policy import Policy
from robustq.quant.quantize import quantize
from robustq.quant.quantizers import pact_penalty
from robustq.utils.provenance import provenance


def finetune_config(card: ModelCard, epochs: int, lr: float, sigma: float,
                    seed: int = 0) -> TrainConfig:
    """The short fine-tuning recipe shared by benchmarks and the grid: cosine schedule, no
    per-epoch evaluation, crop (4 px for RGB, 2 otherwise) and flips for RGB images."""
    return TrainConfig(arch=card.arch, epochs=epochs, lr=lr, schedule="cosine", sigma=sigma,
                       seed=seed, eval_images=0).for_images(card.in_channels)


def calibration_batches(ds: ImageDataset, images: int = 512, batch: int = 128,
                        sigma: float = 0.0, seed: int = 0) -> list[torch.Tensor]:
    """``images`` evenly spaced training images (with the training noise, if any) in batches."""
    g = torch.Generator().manual_seed(seed)
    x, _ = ds.spread(images).tensors()
    if sigma > 0:
        x = x + sigma * torch.randn(x.shape, generator=g)
    return list(x.split(batch))


def quantize_and_finetune(model: torch.nn.Module, card: ModelCard, policy: Policy, method: str,
                          train_ds: ImageDataset, test_ds: ImageDataset, cfg: TrainConfig,
                          out_dir: str | Path, resume: bool = False,
                          reporter: TrainReporter | None = None, pact_lambda: float = 1e-4,
                          dq_beta: float = 0.0, base_meta: dict[str, Any] | None = None,
                          finetune: bool = True, device: torch.device | None = None
                          ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Quantize ``model`` (calibrated on noisy training images), fine-tune it for ``cfg.epochs``
    at ``cfg.sigma`` (unless ``finetune`` is False: post-training quantization), and save
    ``out_dir/model.safetensors`` as a quantized checkpoint."""
    qmodel = quantize(model, policy, method,
                      calibration=calibration_batches(train_ds, sigma=cfg.sigma, seed=cfg.seed))

    def extra(m: torch.nn.Module) -> torch.Tensor:
        loss = pact_penalty(m, pact_lambda) if method == "pact" else torch.zeros(())
        return loss + lipschitz_penalty(m, dq_beta) if dq_beta > 0 else loss

    def save(path, m, c, meta):
        return save_quantized(path, m, c, {**meta, "quant_finetune": {
            "method": method, "pact_lambda": pact_lambda, "dq_beta": dq_beta,
            "base": base_meta or {}}})

    if not finetune:
        meta = {"sigma": cfg.sigma, "epochs": 0, "train_time_s": 0.0,
                "accuracy": evaluate(qmodel, test_ds, cfg.sigma, seed=cfg.seed),
                "provenance": provenance(cfg.seed, cfg.to_json())}
        save(Path(out_dir) / FINAL_FILE, qmodel, card, meta)
        return qmodel.eval(), meta
    meta = train(qmodel, card, train_ds, test_ds, cfg, out_dir, resume=resume,
                 reporter=reporter, extra_loss=extra, save=save,
                 teacher=model.eval() if cfg.distill > 0 else None, device=device)
    return qmodel.eval(), meta
