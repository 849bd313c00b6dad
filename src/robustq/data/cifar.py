"""CIFAR-10 in its two official layouts: ``cifar-10-batches-py`` (pickles) and ``-bin``.

The python layout is a pickle: we read it with a restricted unpickler that only allows the few
NumPy reconstruction functions those files need, so a malicious file cannot run code.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import numpy as np

from robustq.data.dataset import ImageDataset
from robustq.utils.errors import RobustqError

_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_TEST_BATCHES = ["test_batch"]
_RECORD = 1 + 3 * 32 * 32

# Exactly what the official pickles (and NumPy 1/2 re-pickles of them) reference.
_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_ALLOWED_GLOBALS = _RECONSTRUCT | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArrayType:
    """What the unpickler hands out for ``numpy.ndarray``: a token that ``_reconstruct``
    accepts, but that cannot be called (``ndarray(shape)`` would allocate any size asked)."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global outside a small allow-list, and bounds every array
    it allocates by the file's size: a tiny file cannot make it allocate gigabytes."""

    def __init__(self, file, source: str, size: int) -> None:
        super().__init__(file, encoding="bytes")
        self._source, self._limit = source, size

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) not in _ALLOWED_GLOBALS:
            raise RobustqError(
                f"{self._source}: refused to unpickle {module}.{name}: a CIFAR-10 batch file "
                "only contains NumPy arrays, lists and strings"
            )
        if (module, name) == ("numpy", "ndarray"):
            return _ArrayType
        if (module, name) in _RECONSTRUCT:
            return self._bounded_reconstruct
        return super().find_class(module, name)

    def _bounded_reconstruct(self, subtype, shape, dtype):
        if subtype is not _ArrayType:
            raise RobustqError(f"{self._source}: unexpected array type in the pickle")
        dims = shape if isinstance(shape, tuple) else (shape,)
        if not all(isinstance(d, int) and d >= 0 for d in dims):
            raise RobustqError(f"{self._source}: invalid array shape {shape!r}")
        nbytes = math.prod(dims) * np.dtype(dtype if not isinstance(dtype, bytes)
                                            else dtype.decode("latin-1")).itemsize
        if nbytes > self._limit:
            raise RobustqError(f"{self._source}: an array of {nbytes} bytes in a file of "
                               f"{self._limit}; refusing it")
        return np.ndarray.__new__(np.ndarray, dims, dtype)


def restricted_load(path: Path) -> object:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RobustqError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return RestrictedUnpickler(io.BytesIO(data), str(path), len(data)).load()
    except RobustqError:
        raise
    except Exception as e:  # any malformed pickle
        raise RobustqError(f"{path}: not a readable CIFAR-10 pickle ({e})") from None


def _split_files(root: Path, split: str, names: dict[str, list[str]], suffix: str) -> list[Path]:
    if split not in names:
        raise RobustqError(f"{root}: unknown split {split!r}; CIFAR-10 has 'train' and 'test'")
    files = [root / (n + suffix) for n in names[split]]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise RobustqError(f"{root}: split {split!r} needs {', '.join(missing)}, which is missing")
    return files


def _key(d: dict, key: str, path: Path):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise RobustqError(f"{path}: expected a dict with key {key!r}")


def load_cifar10_python(root: str | Path, split: str) -> ImageDataset:
    """Read ``cifar-10-batches-py`` (``data_batch_1..5``, ``test_batch``, ``batches.meta``)."""
    root = Path(root)
    files = _split_files(root, split, {"train": _TRAIN_BATCHES, "test": _TEST_BATCHES}, "")
    meta = restricted_load(root / "batches.meta") if (root / "batches.meta").is_file() else None
    classes = (
        tuple(n.decode() if isinstance(n, bytes) else str(n)
              for n in _key(meta, "label_names", root / "batches.meta"))
        if isinstance(meta, dict) else tuple(str(i) for i in range(10))
    )
    images, labels = [], []
    for f in files:
        d = restricted_load(f)
        if not isinstance(d, dict):
            raise RobustqError(f"{f}: expected a dict of 'data' and 'labels'")
        data = np.asarray(_key(d, "data", f))
        lab = np.asarray(_key(d, "labels", f), dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise RobustqError(f"{f}: expected uint8 data of shape (N, 3072), got "
                               f"{data.dtype} {data.shape}")
        if len(lab) != len(data):
            raise RobustqError(f"{f}: {len(lab)} labels for {len(data)} images")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
    return ImageDataset(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels),
                        classes, str(root), split)


def load_cifar10_binary(root: str | Path, split: str) -> ImageDataset:
    """Read ``cifar-10-batches-bin`` (records of 1 label byte + 3072 pixel bytes)."""
    root = Path(root)
    files = _split_files(root, split, {"train": _TRAIN_BATCHES, "test": _TEST_BATCHES}, ".bin")
    meta = root / "batches.meta.txt"
    classes = (
        tuple(line.strip() for line in meta.read_text().splitlines() if line.strip())
        if meta.is_file() else tuple(str(i) for i in range(10))
    )
    images, labels = [], []
    for f in files:
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size == 0 or raw.size % _RECORD:
            raise RobustqError(
                f"{f}: truncated record: size {raw.size} bytes is not a multiple of "
                f"{_RECORD} (1 label byte + 3072 pixel bytes)"
            )
        rec = raw.reshape(-1, _RECORD)
        labels.append(rec[:, 0].astype(np.int64))
        images.append(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    lab = np.concatenate(labels)
    if lab.max() >= len(classes):
        raise RobustqError(f"{root}: label {lab.max()} but only {len(classes)} class names")
    return ImageDataset(np.ascontiguousarray(np.concatenate(images)), lab, classes, str(root),
                        split)
