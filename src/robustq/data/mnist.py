"""MNIST-style IDX files (``train-images-idx3-ubyte[.gz]`` etc.), gzipped or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from robustq.data.dataset import ImageDataset
from robustq.utils.errors import RobustqError

_PREFIX = {"train": "train", "test": "t10k"}
IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def find_idx(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file, checking its magic number and that it holds every record it declares."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise RobustqError(f"{path}: cannot read IDX file ({e})") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise RobustqError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise RobustqError(
            f"{path}: wrong IDX magic 0x{got:08x}, expected 0x{magic:08x} "
            f"(uint8, {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    need = int(np.prod(dims))
    if len(raw) - header != need:
        raise RobustqError(
            f"{path}: truncated record: header declares {dims} = {need} bytes of data, "
            f"file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def is_mnist_dir(root: Path) -> bool:
    return root.is_dir() and any(find_idx(root, f"{p}-images-idx3-ubyte") for p in _PREFIX.values())


def load_mnist(root: str | Path, split: str) -> ImageDataset:
    root = Path(root)
    if split not in _PREFIX:
        raise RobustqError(f"{root}: unknown split {split!r}; MNIST has 'train' and 'test'")
    files = {}
    for kind, idx in (("images", 3), ("labels", 1)):
        stem = f"{_PREFIX[split]}-{kind}-idx{idx}-ubyte"
        files[kind] = find_idx(root, stem)
        if files[kind] is None:
            raise RobustqError(f"{root}: split {split!r} needs {stem} (or {stem}.gz), "
                               "which is missing")
    images = read_idx(files["images"], IMAGES_MAGIC)
    labels = read_idx(files["labels"], LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise RobustqError(f"{files['labels']}: {len(labels)} labels for {len(images)} images "
                           f"in {files['images'].name}")
    if len(labels) and labels.max() > 9:
        raise RobustqError(f"{files['labels']}: label {labels.max()} outside 0-9")
    return ImageDataset(np.ascontiguousarray(images[..., None]), labels,
                        tuple(str(i) for i in range(10)), str(root), split)
