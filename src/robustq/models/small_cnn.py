"""A small CNN for 28-pixel grey images (MNIST): three 3x3 conv stages and two linear layers
(about 190k parameters, 0.75 MB in fp32)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustq.models.base import ImageClassifier, relu
from robustq.models.registry import register_model


class SmallCNN(ImageClassifier):
    def __init__(self, num_classes: int, in_channels: int, mean, std) -> None:
        super().__init__(num_classes, in_channels, mean, std)
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(relu(self.bn1(self.conv1(x)), self.act_bound), 2)
        out = F.max_pool2d(relu(self.bn2(self.conv2(out)), self.act_bound), 2)
        out = relu(self.bn3(self.conv3(out)), self.act_bound)
        out = F.adaptive_avg_pool2d(out, 4).flatten(1)
        return self.fc2(relu(self.fc1(out), self.act_bound))


@register_model("small_cnn")
def small_cnn(**kw) -> SmallCNN:
    return SmallCNN(**kw)
