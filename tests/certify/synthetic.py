"""Base classifiers whose true class probabilities under Gaussian noise are known exactly."""

from __future__ import annotations

import torch
from scipy.stats import norm
from torch import nn


class ThresholdClassifier(nn.Module):
    """Class 0 exactly when pixel (0, 0, 0) exceeds ``t``, else class 1.

    At x = 0 under N(0, sigma^2 I) noise, P(class 0) = 1 - Phi(t / sigma) = ``p``; the smoothed
    classifier's true l2 robustness radius there is ``sigma * PhiInv(p)`` (moving the pixel by
    -t flips it, and nothing moves it faster).

    With ``flip_p`` > 0 it is an *approximation* f_p of that classifier: it answers class 1
    whenever pixel (0, 0, 1) exceeds a second threshold, which happens with probability
    ``flip_p`` independently, so P_p(class 0) = p (1 - flip_p) and P(f != f_p) = p flip_p.
    """

    def __init__(self, p: float, sigma: float, flip_p: float = 0.0) -> None:
        super().__init__()
        self.t = float(sigma * norm.ppf(1 - p))
        self.t2 = float(sigma * norm.ppf(1 - flip_p)) if flip_p > 0 else float("inf")
        self.dummy = nn.Parameter(torch.zeros(()))     # so the model has a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x[:, 0, 0, 0] > self.t
        flipped = x[:, 0, 0, 1] > self.t2
        cls0 = first & ~flipped
        return torch.stack([cls0.float(), (~cls0).float()], 1)


def true_radius(p: float, sigma: float) -> float:
    return float(sigma * norm.ppf(p)) if p > 0.5 else 0.0
