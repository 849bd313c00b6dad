"""The in-memory image dataset every loader returns: uint8 pixels, int64 labels, class names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from robustq.utils.errors import RobustqError


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Images as uint8 ``(N, H, W, C)``, labels as int64 ``(N,)`` in ``[0, len(classes))``.

    ``source`` names where the data came from (a path or ``embedded:mnist``); robustq always
    feeds models images in [0, 1] (``tensors``), normalization lives inside the model.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str
    split: str

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise RobustqError(
                f"{self.source}: images must be uint8 (N, H, W, C), got "
                f"{self.images.dtype} {self.images.shape}"
            )
        if self.labels.shape != (len(self.images),):
            raise RobustqError(
                f"{self.source}: {len(self.labels)} labels for {len(self.images)} images"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise RobustqError(
                f"{self.source}: labels must lie in [0, {len(self.classes)}), got "
                f"[{self.labels.min()}, {self.labels.max()}]"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` as a model sees one image."""
        _, h, w, c = self.images.shape
        return (c, h, w)

    def subset(self, indices: np.ndarray | list[int] | range) -> ImageDataset:
        idx = np.asarray(list(indices) if isinstance(indices, range) else indices, dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise RobustqError(
                f"{self.source}: image indices must lie in [0, {len(self)}), got "
                f"[{idx.min()}, {idx.max()}]"
            )
        return ImageDataset(self.images[idx], self.labels[idx], self.classes, self.source,
                            self.split)

    def spread(self, count: int) -> ImageDataset:
        """``count`` evenly spaced images (all of them if fewer): a subset that covers every
        class even when the data are stored sorted by class, as ImageFolder trees are."""
        if count >= len(self):
            return self
        return self.subset(spread_indices(len(self), count))

    def tensors(self, indices: np.ndarray | slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images ``(N, C, H, W)`` in [0, 1] and int64 labels."""
        sel = slice(None) if indices is None else indices
        x = torch.from_numpy(np.ascontiguousarray(self.images[sel])).permute(0, 3, 1, 2)
        return x.float().div_(255.0), torch.from_numpy(np.asarray(self.labels[sel], np.int64))

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the pixels in [0, 1] (used for a model's normalization)."""
        x = self.images.reshape(-1, self.images.shape[-1]).astype(np.float64) / 255.0
        return tuple(x.mean(0).round(4).tolist()), tuple(x.std(0).round(4).tolist())


def spread_indices(size: int, count: int) -> list[int]:
    """``count`` evenly spaced indices into ``range(size)`` (all of them if ``count >= size``)."""
    if count >= size:
        return list(range(size))
    step = size / max(count, 1)
    return [int(i * step) for i in range(max(count, 0))]
