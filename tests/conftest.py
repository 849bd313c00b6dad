"""Shared fixtures: tiny data sets the tests write themselves (never the real data)."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ROBUSTQ_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(2)


def rand_images(n: int, h: int = 32, w: int = 32, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def write_cifar_python(root: Path, per_batch: int = 4) -> dict[str, np.ndarray]:
    """The official cifar-10-batches-py layout, pickled with protocol 2 like the original."""
    root.mkdir(parents=True)
    out = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        imgs = rand_images(per_batch, seed=i)
        labels = [(i + j) % 10 for j in range(per_batch)]
        d = {b"batch_label": name.encode(), b"labels": labels,
             b"data": imgs.transpose(0, 3, 1, 2).reshape(per_batch, -1),
             b"filenames": [f"{name}_{j}.png".encode() for j in range(per_batch)]}
        (root / name).write_bytes(pickle.dumps(d, protocol=2))
        out[name] = imgs
    meta = {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_vis": 3072}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return out


def write_cifar_binary(root: Path, per_batch: int = 4) -> dict[str, np.ndarray]:
    root.mkdir(parents=True)
    out = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        imgs = rand_images(per_batch, seed=10 + i)
        labels = np.array([(i + j) % 10 for j in range(per_batch)], np.uint8)
        rec = np.concatenate([labels[:, None], imgs.transpose(0, 3, 1, 2).reshape(per_batch, -1)],
                             axis=1)
        (root / f"{name}.bin").write_bytes(rec.tobytes())
        out[name] = imgs
    (root / "batches.meta.txt").write_text("\n".join(CIFAR_CLASSES) + "\n")
    return out


def write_idx(path: Path, arr: np.ndarray, magic: int, gz: bool) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_mnist(root: Path, gz: bool, n: int = 12) -> dict[str, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix in ("train", "t10k"):
        imgs = rand_images(n, 28, 28, 1, seed=len(prefix))[..., 0]
        labels = np.arange(n) % 10
        write_idx(root / f"{prefix}-images-idx3-ubyte", imgs, 0x803, gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, 0x801, gz)
        out[prefix] = imgs
    return out


def write_image_folder(root: Path, classes=("cat", "dog"), per_class: int = 3,
                       fmt: str = "png", size: int = 32) -> None:
    for split in ("train", "test"):
        for k, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True)
            for j in range(per_class):
                Image.fromarray(rand_images(1, size, size, seed=100 * k + j)[0]).save(d / f"{j:04d}.{fmt}")


@pytest.fixture
def tiny_rgb_dataset():
    """A learnable 2-class 8x8 RGB data set: class 1 is bright, class 0 dark."""
    from robustq.data import ImageDataset

    rng = np.random.default_rng(0)
    labels = np.arange(64) % 2
    base = np.where(labels[:, None, None, None] == 1, 180, 60)
    imgs = np.clip(base + rng.normal(0, 20, (64, 8, 8, 3)), 0, 255).astype(np.uint8)
    return ImageDataset(imgs, labels.astype(np.int64), ("dark", "bright"), "tiny", "train")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray cluster of 2 CPUs, started by the test (robustq[ray] installed)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                 [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}})
    yield ray
    ray.shutdown()
