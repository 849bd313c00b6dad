"""Regenerate the embedded CIFAR-10 subset shipped in the package (the demo's default).

A stratified subset of real CIFAR-10: 120 train images per class (1,200) and 30 test images per
class (300), drawn with a fixed seed from the shared JPEG ImageFolder zip (or any CIFAR-10 source
robustq reads). Deterministic: running it again on the same files writes identical arrays.

    python scripts/make_embedded_cifar10.py ../shared/data/cifar10-jpeg.zip
"""

from __future__ import annotations

import sys

from robustq.data import load_dataset
from robustq.data.embedded import CIFAR10_CLASSES, embedded_dir, embedded_set, save_subset

SEED = 20261201
TRAIN_PER_CLASS = 120
TEST_PER_CLASS = 30


def main(source: str) -> None:
    splits = {split: (load_dataset(source, split), per_class)
              for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS))}
    if any(tuple(ds.classes) != CIFAR10_CLASSES for ds, _ in splits.values()):
        raise SystemExit(f"{source}: the classes are not CIFAR-10's")
    out = embedded_dir() / embedded_set("embedded-cifar10").file
    save_subset(splits, SEED, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/cifar10-jpeg.zip")
