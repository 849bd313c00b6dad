"""Regenerate the embedded default data set shipped in the package.

A stratified subset of real MNIST: 1,000 train images per class (10,000) and 100 test images per
class (1,000), drawn with a fixed seed from the official IDX files. Deterministic: running it
again on the same files writes identical arrays.

    python scripts/make_embedded_mnist.py ../shared/data/mnist
"""

from __future__ import annotations

import sys
from pathlib import Path

from robustq.data.embedded import EMBEDDED_FILE, embedded_dir, save_subset
from robustq.data.mnist import load_mnist

SEED = 20261122
TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 100


def main(mnist_dir: str) -> None:
    out = embedded_dir() / EMBEDDED_FILE
    save_subset({"train": (load_mnist(mnist_dir, "train"), TRAIN_PER_CLASS),
                 "test": (load_mnist(mnist_dir, "test"), TEST_PER_CLASS)}, SEED, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path("../shared/data/mnist")))
