"""Accuracy of a classifier on clean inputs and under isotropic Gaussian noise."""

from __future__ import annotations

import torch
from torch import nn

from robustq.data.dataset import ImageDataset
from robustq.utils.device import module_device
from robustq.utils.modes import eval_mode
from robustq.utils.validate import check_sigma


def batches(ds: ImageDataset, batch_size: int):
    for start in range(0, len(ds), batch_size):
        yield ds.tensors(slice(start, start + batch_size))


@torch.inference_mode()
def evaluate(model: nn.Module, ds: ImageDataset, sigma: float = 0.0, batch_size: int = 500,
             seed: int = 0, channels_last: bool = True) -> dict[str, float]:
    """Top-1 accuracy clean and (if ``sigma > 0``) with one draw of N(0, sigma^2 I) noise per image.

    ``sigma`` is in [0, 1] pixel units; the noise is seeded by ``seed``, so results repeat.
    Noisy images are not clipped, matching randomized smoothing's base classifier.
    """
    sigma = check_sigma(sigma, allow_zero=True)
    with eval_mode(model):
        correct_clean, correct_noisy = _count_correct(model, ds, sigma, seed, batch_size,
                                                      channels_last)
    n = max(len(ds), 1)
    out = {"n": len(ds), "clean_accuracy": correct_clean / n}
    if sigma > 0:
        out.update(sigma=sigma, noisy_accuracy=correct_noisy / n)
    return out


def _count_correct(model: nn.Module, ds: ImageDataset, sigma: float, seed: int,
                   batch_size: int, channels_last: bool) -> tuple[int, int]:
    """Correct top-1 predictions, clean and under one seeded noise draw per image."""
    clean, noisy = _correct(model, ds, sigma, seed, batch_size, channels_last)
    return int(clean.sum()), int(noisy.sum())


def _correct(model: nn.Module, ds: ImageDataset, sigma: float, seed: int, batch_size: int,
             channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    clean, noisy = [], []
    device = module_device(model)         # noise drawn on the CPU: the same on every device
    for x, y in batches(ds, batch_size):
        clean.append(model(x.to(device).contiguous(memory_format=mf)).argmax(1).cpu() == y)
        if sigma > 0:
            xn = (x + sigma * torch.randn(x.shape, generator=gen)).to(device)
            noisy.append(model(xn.contiguous(memory_format=mf)).argmax(1).cpu() == y)
    empty = torch.zeros(0, dtype=torch.bool)
    return torch.cat(clean) if clean else empty, torch.cat(noisy) if noisy else empty


@torch.inference_mode()
def correct_per_image(model: nn.Module, ds: ImageDataset, sigma: float, seed: int = 0,
                      batch_size: int = 500, channels_last: bool = True
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image top-1 correctness (bool, in data-set order), clean and under the same seeded
    noise draw as ``evaluate(..., seed=seed)``: models evaluated with one seed see the same
    noise, so their accuracies can be compared image by image (a paired difference)."""
    sigma = check_sigma(sigma, allow_zero=True)
    with eval_mode(model):
        return _correct(model, ds, sigma, seed, batch_size, channels_last)
