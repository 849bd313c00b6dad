"""ResNet-18 adapted to 32-pixel inputs (3x3 stem, no max-pool), as commonly used on CIFAR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustq.models.base import ImageClassifier, relu
from robustq.models.registry import register_model
from robustq.models.resnet_cifar import BasicBlock


class ResNet18(ImageClassifier):
    def __init__(self, num_classes: int, in_channels: int, mean, std) -> None:
        super().__init__(num_classes, in_channels, mean, std)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes, stages = 64, []
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride, shortcut="B"),
                                        BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(512, num_classes)

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        out = relu(self.bn1(self.conv1(x)), self.act_bound)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("resnet18")
def resnet18(**kw) -> ResNet18:
    return ResNet18(**kw)
