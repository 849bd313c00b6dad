"""Regenerate the embedded CIFAR-10 subset shipped in the package (the demo's default).

A stratified subset of real CIFAR-10: 120 train images per class (1,200) and 30 test images per
class (300), drawn with a fixed seed from the shared JPEG ImageFolder zip (or any CIFAR-10 source
robustq reads). Deterministic: running it again on the same files writes identical arrays.

    python scripts/make_embedded_cifar10.py ../shared/data/cifar10-jpeg.zip
"""

from __future__ import annotations

import sys

import numpy as np

from robustq.data import load_dataset
from robustq.data.embedded import CIFAR10_CLASSES, embedded_dir, embedded_set, subset_indices

SEED = 20261201
TRAIN_PER_CLASS = 120
TEST_PER_CLASS = 30


def main(source: str) -> None:
    arrays = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        ds = load_dataset(source, split)
        if tuple(ds.classes) != CIFAR10_CLASSES:
            raise SystemExit(f"{source}: classes {ds.classes} are not CIFAR-10's")
        idx = subset_indices(ds.labels, per_class, SEED)
        arrays[f"{split}_images"] = ds.images[idx]
        arrays[f"{split}_labels"] = ds.labels[idx].astype(np.uint8)
        arrays[f"{split}_source_indices"] = idx.astype(np.int32)
    out = embedded_dir() / embedded_set("embedded-cifar10").file
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/cifar10-jpeg.zip")
