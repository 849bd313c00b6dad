"""A tiny trained 10-class model on learnable synthetic images, shared by the attack tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def prototype_data(n: int, seed: int = 0, noise: float = 0.08):
    """Images 3x8x8 in [0, 1]: class k is prototype k plus gaussian noise (clipped)."""
    g = torch.Generator().manual_seed(1234)
    protos = 0.25 + 0.5 * torch.rand(10, 3, 8, 8, generator=g)
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = (protos[y] + noise * torch.randn(n, 3, 8, 8, generator=g)).clamp(0, 1)
    return x, y


@pytest.fixture(scope="session")
def tiny_classifier():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                          nn.Flatten(), nn.Linear(256, 10))
    x, y = prototype_data(2000, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(300):
        i = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
