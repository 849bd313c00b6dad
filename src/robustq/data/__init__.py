"""Image data sets: CIFAR-10 (python and binary layouts), MNIST IDX, ImageFolder, embedded MNIST."""

from robustq.data.cifar import RestrictedUnpickler, load_cifar10_binary, load_cifar10_python
from robustq.data.dataset import ImageDataset
from robustq.data.embedded import load_embedded
from robustq.data.imagefolder import load_image_folder
from robustq.data.load import FORMATS, detect_format, load_dataset
from robustq.data.mnist import load_mnist

__all__ = [
    "FORMATS",
    "ImageDataset",
    "RestrictedUnpickler",
    "detect_format",
    "load_cifar10_binary",
    "load_cifar10_python",
    "load_dataset",
    "load_embedded",
    "load_image_folder",
    "load_mnist",
]
