"""Regenerate the embedded default data set shipped in the package.

A stratified subset of real MNIST: 1,000 train images per class (10,000) and 100 test images per
class (1,000), drawn with a fixed seed from the official IDX files. Deterministic: running it
again on the same files writes identical arrays.

    python scripts/make_embedded_mnist.py ../shared/data/mnist
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from robustq.data.embedded import EMBEDDED_FILE, embedded_dir, subset_indices
from robustq.data.mnist import load_mnist

SEED = 20261122
TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 100


def main(mnist_dir: str) -> None:
    arrays = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        ds = load_mnist(mnist_dir, split)
        idx = subset_indices(ds.labels, per_class, SEED)
        arrays[f"{split}_images"] = ds.images[idx]
        arrays[f"{split}_labels"] = ds.labels[idx].astype(np.uint8)
        arrays[f"{split}_source_indices"] = idx.astype(np.int32)
    out = embedded_dir() / EMBEDDED_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path("../shared/data/mnist")))
