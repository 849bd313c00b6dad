"""Reproducible Gaussian noise for smoothing: every chunk of samples comes from its own seed.

Image ``i``'s samples in phase ``phase`` (0 = selection, 1 = estimation) are cut into chunks of
``chunk`` samples; chunk ``j`` is drawn from ``torch.Generator().manual_seed(chunk_seed(seed_i,
phase, j))``. Any prefix of an image's samples can therefore be regenerated exactly, whatever
batches it was originally computed in (this is what incremental certification replays).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

SELECTION, ESTIMATION = 0, 1
_MASK = (1 << 63) - 1


def chunk_seed(seed: int, phase: int, j: int) -> int:
    """A 63-bit seed for chunk ``j`` of ``phase`` of the image with seed ``seed`` (SplitMix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + phase * 0xBF58476D1CE4E5B9 + (j + 1) * 0x94D049BB133111EB)
    z &= (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK


def chunk_sizes(n: int, chunk: int) -> Iterator[int]:
    """The sizes of the chunks of ``n`` samples, lazily (O(1) memory for any n / chunk)."""
    for _ in range(n // chunk):
        yield chunk
    if n % chunk:
        yield n % chunk


def chunk_noise(shape_chw: tuple[int, int, int], m: int, seed: int,
                device: torch.device | None = None) -> torch.Tensor:
    """``m`` standard normal samples of an image of shape (C, H, W), as a channels_last tensor,
    drawn on ``device`` (default: the CPU) by that device's generator: the same seed gives the
    same noise on every CPU, another (equally valid) draw on a GPU.

    Drawn as (m, H, W, C) and viewed as (m, C, H, W): channels_last without a copy.
    """
    c, h, w = shape_chw
    device = device or torch.device("cpu")
    g = torch.Generator(device=device).manual_seed(seed)
    return torch.randn((m, h, w, c), generator=g, device=device).permute(0, 3, 1, 2)
