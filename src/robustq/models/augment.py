"""Batched, seeded training augmentation on [0, 1] tensors: random crop with zero padding, flip,
and Gaussian noise (the augmentation randomized smoothing needs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` pixels and crop back to the input size at a random offset per image."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    xp = F.pad(x, (padding,) * 4)
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]          # (n, h, 1)
    cols = (ox[:, None] + torch.arange(w))[:, None, :]          # (n, 1, w)
    out = xp[torch.arange(n)[:, None, None], :, rows, cols]      # (n, h, w, c)
    return out.permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def gaussian_noise(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """``x + N(0, sigma^2 I)``, sigma in [0, 1] pixel units, not clipped."""
    return x + sigma * torch.randn(x.shape, generator=gen) if sigma > 0 else x
