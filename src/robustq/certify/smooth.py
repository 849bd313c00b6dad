"""Randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019), batched and seeded.

``Smooth(model, num_classes, sigma)`` is the smoothed classifier
g(x) = argmax_c P(f(x + e) = c), e ~ N(0, sigma^2 I), with ``certify`` and ``predict`` exactly as
the paper's CERTIFY and PREDICT. ``sigma`` and radii are l2 in [0, 1] pixel space: noise is added
to the [0, 1] image, before the model's own normalization layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robustq.certify.noise import ESTIMATION, SELECTION, chunk_noise, chunk_seed, chunk_sizes
from robustq.certify.stats import (
    binom_two_sided_pvalue,
    clopper_pearson_lower,
    plugin_radii,
    radius_from_p,
)
from robustq.models.compile import shippable
from robustq.utils.errors import RobustqError
from robustq.utils.validate import check_sigma

ABSTAIN = -1
PREDICTION_PHASE = 2
PLUGIN_PHASE = 3          # plug-in estimates draw their own noise, never a certificate's


@dataclass(frozen=True)
class Certificate:
    """Result of CERTIFY for one image: ``prediction`` is a class or ``ABSTAIN`` (radius 0)."""

    prediction: int
    radius: float
    p_lower: float
    count: int
    n: int


def check_alpha(alpha: float, name: str = "alpha") -> None:
    if not 0 < alpha < 1:
        raise RobustqError(f"{name} must lie in (0, 1), got {alpha}")


class Smooth:
    """A smoothed classifier over any ``nn.Module`` that maps [0, 1] images to logits.

    Sampling is vectorized: noise for several images is stacked into one batch of at most
    ``batch_size`` samples, predictions are counted with one scatter-add per batch, and every
    chunk of ``chunk`` samples is drawn from its own recorded seed (see ``noise``), so any run can
    be replayed sample for sample.
    """

    def __init__(self, model: nn.Module, num_classes: int, sigma: float, batch_size: int = 400,
                 chunk: int | None = None, device: torch.device | str | None = None) -> None:
        sigma = check_sigma(sigma)
        if batch_size < 1:
            raise RobustqError(f"batch size must be >= 1, got {batch_size}")
        chunk = batch_size if chunk is None else chunk
        if not 1 <= chunk <= batch_size:
            raise RobustqError(f"chunk must lie in [1, batch size {batch_size}], got {chunk}")
        self.model, self.num_classes, self.sigma = model, num_classes, float(sigma)
        self.batch_size, self.chunk = batch_size, chunk
        # where noise is drawn and the model runs: given, or the model's (CPU noise then)
        self.device = torch.device(device) if device is not None else None
        self._checked = False

    def __getstate__(self) -> dict:
        """To a worker process (``utils.parallel``): the model as ``shippable`` makes it."""
        return {**self.__dict__, "model": shippable(self.model)}

    # ----------------------------------------------------------------------------- sampling
    @torch.inference_mode()
    def sample(self, xs: torch.Tensor, n: int, seeds: Sequence[int], phase: int,
               record: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Class counts ``(k, num_classes)`` of f on ``n`` noisy copies of each of ``k`` images.

        With ``record``, also f's per-sample predictions ``(k, n)`` in sampling order.
        """
        if n < 1:
            raise RobustqError(f"number of samples must be >= 1, got {n}")
        xs = xs.detach()
        k = xs.shape[0]
        counts = torch.zeros(k * self.num_classes, dtype=torch.int64)
        preds = torch.empty((k, n), dtype=torch.int16) if record else None
        jobs, size = [], 0
        for i in range(k):
            offset = 0
            for j, m in enumerate(chunk_sizes(n, self.chunk)):
                if size + m > self.batch_size:
                    self._run(xs, jobs, counts, preds)
                    jobs, size = [], 0
                jobs.append((i, offset, m, chunk_seed(int(seeds[i]), phase, j)))
                offset, size = offset + m, size + m
        if jobs:
            self._run(xs, jobs, counts, preds)
        return counts.view(k, self.num_classes).numpy(), (preds.numpy() if record else None)

    def plugin_acr(self, xs: torch.Tensor, labels: Sequence[int], m: int,
                   seeds: Sequence[int]) -> dict[str, float]:
        """Plug-in estimates from ``m`` noisy samples per image (``sample``, replayable by
        ``seeds``): the mean plug-in radius (``stats.plugin_radii``: an estimate of the ACR, not
        a certificate), the mean share of samples on the label (noisy accuracy) and the share of
        images whose top class is the label."""
        counts, _ = self.sample(xs, m, seeds, phase=PLUGIN_PHASE)
        y = np.asarray(labels)
        return {"plugin_acr": float(plugin_radii(counts, y, self.sigma).mean()),
                "noisy_accuracy": float((counts[np.arange(len(y)), y] / m).mean()),
                "top_accuracy": float((counts.argmax(1) == y).mean())}

    def noisy_batch(self, xs: torch.Tensor, jobs: list[tuple[int, int, int, int]]) -> torch.Tensor:
        """The noisy images of ``jobs`` (image, offset, count, seed), channels_last."""
        shape = tuple(xs.shape[1:])
        noise = torch.cat([chunk_noise(shape, m, s, self.device) for _, _, m, s in jobs])
        index = torch.cat([torch.full((m,), i, dtype=torch.int64) for i, _, m, _ in jobs])
        return noise.mul_(self.sigma).add_(xs.to(noise.device)[index.to(noise.device)])

    def _run(self, xs, jobs, counts, preds) -> None:
        device = self.device or next(iter(self.model.parameters()), torch.empty(0)).device
        logits = self.model(self.noisy_batch(xs, jobs).to(device))
        if not self._checked:
            if logits.ndim != 2 or logits.shape[1] != self.num_classes:
                raise RobustqError(f"the model outputs {tuple(logits.shape[1:])} scores per image "
                                   f"but the data has {self.num_classes} classes")
            self._checked = True
        pred = logits.argmax(1).cpu()
        index = torch.cat([torch.full((m,), i, dtype=torch.int64) for i, _, m, _ in jobs])
        counts.index_add_(0, index * self.num_classes + pred, torch.ones_like(pred))
        if preds is not None:
            start = 0
            for i, offset, m, _ in jobs:
                preds[i, offset:offset + m] = pred[start:start + m]
                start += m

    # ------------------------------------------------------------------------- the algorithms
    def certify_many(self, xs: torch.Tensor, n0: int, n: int, alpha: float,
                     seeds: Sequence[int], record: bool = False
                     ) -> tuple[list[Certificate], np.ndarray | None]:
        """CERTIFY each image of ``xs``; with ``record``, also f's estimation predictions.

        Guarantee (Cohen et al., Theorem 1): for each image, with probability at least
        1 - alpha over the noise, if the result is class cA with radius R then g(x + d) = cA for
        every ||d||_2 < R.
        """
        if n0 < 1 or n < 1:
            raise RobustqError(f"n0 and n must be >= 1, got n0={n0}, n={n}")
        check_alpha(alpha)
        counts0, _ = self.sample(xs, n0, seeds, SELECTION)
        c_a = counts0.argmax(1)
        counts, preds = self.sample(xs, n, seeds, ESTIMATION, record)
        n_a = counts[np.arange(len(c_a)), c_a]
        p_low = clopper_pearson_lower(n_a, n, alpha)
        certs = [self._certificate(int(c), float(p), int(k), n) for c, p, k in zip(c_a, p_low, n_a,
                                                                                    strict=True)]
        return certs, preds

    def _certificate(self, c_a: int, p_low: float, n_a: int, n: int) -> Certificate:
        if p_low > 0.5:
            return Certificate(c_a, float(radius_from_p(p_low, self.sigma)), p_low, n_a, n)
        return Certificate(ABSTAIN, 0.0, p_low, n_a, n)

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, seed: int = 0
                ) -> Certificate:
        """CERTIFY one image ``x`` of shape (C, H, W) in [0, 1]: (class or ABSTAIN, l2 radius)."""
        return self.certify_many(x.unsqueeze(0), n0, n, alpha, [seed])[0][0]

    def predict(self, x: torch.Tensor, n: int, alpha: float, seed: int = 0) -> int:
        """PREDICT: the top class if a two-sided binomial test of its count against the runner-up
        rejects p = 1/2 at level alpha, else ``ABSTAIN``. Returns a wrong class with probability
        at most alpha (Cohen et al., Proposition 1)."""
        check_alpha(alpha)
        counts = self.sample(x.unsqueeze(0), n, [seed], PREDICTION_PHASE)[0][0]
        top2 = np.argsort(counts)[::-1][:2]
        n1, n2 = int(counts[top2[0]]), int(counts[top2[1]])
        return int(top2[0]) if binom_two_sided_pvalue(n1, n1 + n2) <= alpha else ABSTAIN
