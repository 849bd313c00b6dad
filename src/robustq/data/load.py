"""One entry point for every data format: ``load_dataset(source, split)``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from robustq.data.cifar import load_cifar10_binary, load_cifar10_python
from robustq.data.dataset import ImageDataset
from robustq.data.embedded import EMBEDDED, load_embedded
from robustq.data.imagefolder import load_image_folder
from robustq.data.mnist import is_mnist_dir, load_mnist
from robustq.utils.errors import RobustqError
from robustq.utils.registry import Registry

# format -> loader(source as given, its path, split, cache directory)
Loader = Callable[[str | Path, Path | None, str, str | Path | None], ImageDataset]
DATA_FORMATS: Registry[Loader] = Registry("data format")
DATA_FORMATS.register("embedded")(lambda source, path, split, cache: load_embedded(split, str(source)))
DATA_FORMATS.register("cifar10-python")(lambda source, path, split, cache: load_cifar10_python(path, split))
DATA_FORMATS.register("cifar10-binary")(lambda source, path, split, cache: load_cifar10_binary(path, split))
DATA_FORMATS.register("mnist-idx")(lambda source, path, split, cache: load_mnist(path, split))
DATA_FORMATS.register("imagefolder")(
    lambda source, path, split, cache: load_image_folder(path, split, cache_dir=cache))
FORMATS = tuple(DATA_FORMATS.names())


def detect_format(source: str | Path) -> tuple[str, Path | None]:
    """Which loader reads ``source``, and the path it should be given."""
    if str(source) in EMBEDDED:
        return "embedded", None
    path = Path(source)
    if not path.exists():
        raise RobustqError(f"{path}: no such file or directory (expected 'embedded', "
                           "'embedded-cifar10', a .zip, or a directory of CIFAR-10, MNIST IDX "
                           "or ImageFolder data)")
    if path.is_file():
        if path.suffix == ".zip":
            return "imagefolder", path
        raise RobustqError(f"{path}: expected a .zip ImageFolder archive or a directory")
    for name, fmt in (("cifar-10-batches-py", "cifar10-python"),
                      ("cifar-10-batches-bin", "cifar10-binary")):
        if path.name == name:
            return fmt, path
        if (path / name).is_dir():
            return fmt, path / name
    if (path / "data_batch_1").is_file() or (path / "test_batch").is_file():
        return "cifar10-python", path
    if (path / "data_batch_1.bin").is_file() or (path / "test_batch.bin").is_file():
        return "cifar10-binary", path
    if is_mnist_dir(path):
        return "mnist-idx", path
    return "imagefolder", path


def load_dataset(source: str | Path, split: str, cache_dir: str | Path | None = None
                 ) -> ImageDataset:
    """Load split ``train`` or ``test`` of ``source`` as uint8 images with labels and classes.

    ``source`` is ``embedded`` / ``embedded-cifar10`` (the packaged MNIST and CIFAR-10
    subsets), a CIFAR-10 directory in either
    official layout, a directory of MNIST IDX files (gzipped or not), or an ImageFolder tree
    (directory or .zip). Bad data raises :class:`RobustqError` naming the file.
    """
    fmt, path = detect_format(source)
    return DATA_FORMATS.get(fmt)(source, path, split, cache_dir)
