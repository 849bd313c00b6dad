"""The embedded defaults: stratified subsets of real MNIST and CIFAR-10 shipped inside the
package, each beside a zoo model trained on the full data set.

- ``embedded`` (also ``embedded-mnist``): 10,000 train / 1,000 test MNIST images
  (``scripts/make_embedded_mnist.py``); small and fast, what the tests use.
- ``embedded-cifar10``: 1,200 train / 300 test CIFAR-10 images (``scripts/make_embedded_cifar10.py``);
  the demo's default, where quantization visibly costs certified robustness.

Both are generated reproducibly (fixed seeds) from the official files.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from robustq.data.dataset import ImageDataset
from robustq.utils.errors import RobustqError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


@dataclass(frozen=True)
class EmbeddedSet:
    """One packaged subset: its npz file, the ``source`` its images record, the script that
    regenerates it, its class names, and the packaged model trained for it."""

    file: str
    source: str
    script: str
    classes: tuple[str, ...]
    model: str


EMBEDDED: dict[str, EmbeddedSet] = {
    "embedded": EmbeddedSet("mnist_subset.npz", "embedded:mnist", "make_embedded_mnist.py",
                            tuple(str(i) for i in range(10)),
                            "small_cnn_mnist_sigma0.25.safetensors"),
    "embedded-cifar10": EmbeddedSet("cifar10_subset.npz", "embedded:cifar10",
                                    "make_embedded_cifar10.py", CIFAR10_CLASSES,
                                    "resnet20_cifar10_sigma0.25.safetensors"),
}
EMBEDDED["embedded-mnist"] = EMBEDDED["embedded"]
EMBEDDED_NAME = "embedded"
EMBEDDED_FILE = EMBEDDED[EMBEDDED_NAME].file


def embedded_dir() -> Path:
    return Path(str(resources.files("robustq") / "embedded"))


def embedded_set(name: str) -> EmbeddedSet:
    """The packaged subset called ``name``; an unknown name raises, listing the valid ones."""
    if name not in EMBEDDED:
        raise RobustqError(f"embedded data: unknown name {name!r}; the package has "
                           f"{', '.join(sorted(EMBEDDED))}")
    return EMBEDDED[name]


def subset_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` images of each class, drawn without replacement."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
             for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def save_subset(splits: dict[str, tuple[ImageDataset, int]], seed: int, out: Path) -> None:
    """Write a stratified subset (``per_class`` images of each class per split, drawn with
    ``seed``) as the npz layout :func:`load_embedded` reads, with each image's source index."""
    arrays = {}
    for split, (ds, per_class) in splits.items():
        idx = subset_indices(ds.labels, per_class, seed)
        arrays[f"{split}_images"] = ds.images[idx]
        arrays[f"{split}_labels"] = ds.labels[idx].astype(np.uint8)
        arrays[f"{split}_source_indices"] = idx.astype(np.int32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)


def load_embedded(split: str, name: str = EMBEDDED_NAME) -> ImageDataset:
    """Split ``train`` or ``test`` of the packaged subset ``name`` (see :data:`EMBEDDED`)."""
    spec = embedded_set(name)
    path = embedded_dir() / spec.file
    if split not in ("train", "test"):
        raise RobustqError(f"embedded data: unknown split {split!r}; it has 'train' and 'test'")
    if not path.is_file():
        raise RobustqError(f"{path}: the embedded subset {name!r} is missing from the package; "
                           f"regenerate it with scripts/{spec.script}")
    with np.load(path, allow_pickle=False) as z:
        return ImageDataset(z[f"{split}_images"], z[f"{split}_labels"].astype(np.int64),
                            spec.classes, spec.source, split)
