"""CIFAR ResNets of He et al. 2016 (section 4.2): 6n+2 layers, 16/32/64 channels, option-A
(parameter-free, zero-padded) shortcuts, as in the certification and ARQ papers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustq.models.base import ImageClassifier, relu
from robustq.models.registry import register_model


class PadShortcut(nn.Module):
    """Option A shortcut: subsample spatially and zero-pad the new channels."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN and a residual connection. Where the shape changes, the shortcut
    is option A (zero-padded, parameter-free; CIFAR ResNets) or B (1x1 conv + BN; ResNet-18)."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str = "A") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        self.act_bound: float | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = (PadShortcut(planes) if shortcut == "A" else nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = relu(self.bn1(self.conv1(x)), self.act_bound)
        out = self.bn2(self.conv2(out))
        return relu(out + self.shortcut(x), self.act_bound)


class CifarResNet(ImageClassifier):
    def __init__(self, depth: int, num_classes: int, in_channels: int, mean, std) -> None:
        super().__init__(num_classes, in_channels, mean, std)
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        out = relu(self.bn1(self.conv1(x)), self.act_bound)
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


@register_model("resnet20")
def resnet20(**kw) -> CifarResNet:
    return CifarResNet(20, **kw)


@register_model("resnet56")
def resnet56(**kw) -> CifarResNet:
    return CifarResNet(56, **kw)


@register_model("resnet110")
def resnet110(**kw) -> CifarResNet:
    return CifarResNet(110, **kw)
