"""The embedded default: a stratified subset of real MNIST shipped inside the package.

Generated reproducibly from the official IDX files by ``scripts/make_embedded_mnist.py``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from robustq.data.dataset import ImageDataset
from robustq.utils.errors import RobustqError

EMBEDDED_NAME = "embedded"
EMBEDDED_FILE = "mnist_subset.npz"


def embedded_dir() -> Path:
    return Path(str(resources.files("robustq") / "embedded"))


def subset_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` images of each class, drawn without replacement."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
             for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def load_embedded(split: str) -> ImageDataset:
    path = embedded_dir() / EMBEDDED_FILE
    if split not in ("train", "test"):
        raise RobustqError(f"embedded data: unknown split {split!r}; it has 'train' and 'test'")
    if not path.is_file():
        raise RobustqError(f"{path}: the embedded MNIST subset is missing from the package; "
                           "regenerate it with scripts/make_embedded_mnist.py")
    with np.load(path, allow_pickle=False) as z:
        return ImageDataset(z[f"{split}_images"], z[f"{split}_labels"].astype(np.int64),
                            tuple(str(i) for i in range(10)), "embedded:mnist", split)
