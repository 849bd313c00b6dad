"""MobileNetV2 (Sandler et al. 2018) for 32-pixel inputs: stride 1 in the stem and first stage."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustq.models.base import ImageClassifier, relu
from robustq.models.registry import register_model

# (expansion, out_planes, num_blocks, stride); CIFAR variant: stride 1 where ImageNet has 2 early.
_CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
        (6, 160, 3, 2), (6, 320, 1, 1)]


class InvertedResidual(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int) -> None:
        super().__init__()
        planes = expansion * in_planes
        self.use_residual = stride == 1 and in_planes == out_planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.act_bound: float | None = 6.0         # ReLU6, as in the original

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = relu(self.bn1(self.conv1(x)), self.act_bound)
        out = relu(self.bn2(self.conv2(out)), self.act_bound)
        out = self.bn3(self.conv3(out))
        return out + x if self.use_residual else out


class MobileNetV2(ImageClassifier):
    def __init__(self, num_classes: int, in_channels: int, mean, std) -> None:
        super().__init__(num_classes, in_channels, mean, std)
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks, in_planes = [], 32
        for expansion, out_planes, n, stride in _CFG:
            for i in range(n):
                blocks.append(InvertedResidual(in_planes, out_planes, expansion,
                                               stride if i == 0 else 1))
                in_planes = out_planes
        self.features = nn.Sequential(*blocks)
        self.conv2 = nn.Conv2d(320, 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.fc = nn.Linear(1280, num_classes)
        self.act_bound = 6.0

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        out = relu(self.bn1(self.conv1(x)), self.act_bound)
        out = relu(self.bn2(self.conv2(self.features(out))), self.act_bound)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("mobilenetv2")
def mobilenetv2(**kw) -> MobileNetV2:
    return MobileNetV2(**kw)
