"""Models: a registry of CIFAR/MNIST classifiers with built-in normalization, and checkpoints."""

from robustq.models import mobilenetv2, resnet18, resnet_cifar, small_cnn  # noqa: F401 (register)
from robustq.models.base import ImageClassifier, Normalize
from robustq.models.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from robustq.models.registry import get_model, list_models, register_model

__all__ = [
    "ImageClassifier",
    "ModelCard",
    "Normalize",
    "get_model",
    "list_models",
    "load_checkpoint",
    "register_model",
    "save_checkpoint",
]
