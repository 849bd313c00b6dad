"""``CertifyConfig``: one certification run's settings, validated; JSON round-trip."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from robustq.certify.smooth import check_alpha
from robustq.utils.config import JsonConfig
from robustq.utils.errors import RobustqError
from robustq.utils.validate import check_sigma


@dataclass(frozen=True)
class CertifyConfig(JsonConfig):
    """One certification run. sigma in [0, 1] pixel units (None: the model's, see
    ``with_sigma``); images ``offset + skip*k`` for k < ``max``. An image's noise depends on its
    index and ``seed`` only, so runs at offsets 0, s, 2s, ... with skip ``k*s`` together certify
    exactly what one run with skip ``s`` does (a protocol certified in resumable parts)."""

    sigma: float | None = None
    n0: int = 100
    n: int = 10_000
    alpha: float = 0.001
    batch_size: int = 400
    chunk: int = 100
    skip: int = 20
    max_images: int | None = 500
    offset: int = 0
    seed: int = 0
    radii: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    # incremental (IRS) settings, used only against a cache
    n_p: int | None = None
    alpha_zeta: float = 0.001
    gamma: float = 0.99
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sigma is not None:
            check_sigma(self.sigma)
        if not 0.5 < self.gamma <= 1:
            raise RobustqError(f"gamma must lie in (0.5, 1], got {self.gamma}")
        if self.n0 < 1 or self.n < 1:
            raise RobustqError(f"n0 and n must be >= 1, got n0={self.n0}, n={self.n}")
        check_alpha(self.alpha)
        check_alpha(self.alpha_zeta, "alpha_zeta")
        if self.batch_size < 1:
            raise RobustqError(f"batch size must be >= 1, got {self.batch_size}")
        if not 1 <= self.chunk <= self.batch_size:
            raise RobustqError(f"chunk must lie in [1, batch size], got {self.chunk}")
        if self.skip < 1:
            raise RobustqError(f"skip must be >= 1, got {self.skip}")
        if self.offset < 0:
            raise RobustqError(f"offset must be >= 0, got {self.offset}")
        if self.max_images is not None and self.max_images < 1:
            raise RobustqError(f"max images must be >= 1, got {self.max_images}")
        if self.n_p is not None and self.n_p < 1:
            raise RobustqError(f"n_p must be >= 1, got {self.n_p}")

    def with_sigma(self, model_sigma: float | None, model: str = "the model") -> CertifyConfig:
        """This config with sigma set: its own, else the model's training noise."""
        if self.sigma is not None:
            return self
        if model_sigma is None:
            raise RobustqError(f"{model}: no sigma recorded; pass --sigma")
        return dataclasses.replace(self, sigma=float(model_sigma))

    def require_sigma(self) -> float:
        """sigma, which certification needs set (``with_sigma``)."""
        if self.sigma is None:
            raise RobustqError("CertifyConfig.sigma is not set: certify with with_sigma(...)")
        return self.sigma

    def indices(self, size: int) -> list[int]:
        idx = list(range(self.offset, size, self.skip))
        return idx[: self.max_images] if self.max_images is not None else idx

    def image_seed(self, index: int) -> int:
        return self.seed * 1_000_003 + index
