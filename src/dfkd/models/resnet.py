"""CIFAR-style ResNets: ResNet-8/20 (16-32-64) and ResNet-18/34 (64-…-512, 3×3 stem)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv3×3 → stages of BasicBlocks (stride 2 after the first) → global pool → fc."""

    def __init__(
        self, blocks: tuple[int, ...], widths: tuple[int, ...], num_classes: int, in_channels: int
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers = []
        cin = widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            stage = []
            for j in range(n):
                stage.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
            layers.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _small(depth: int, num_classes: int, in_channels: int) -> ResNet:
    n = (depth - 2) // 6
    return ResNet((n, n, n), (16, 32, 64), num_classes, in_channels)


@register_model("resnet8")
def resnet8(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> ResNet:
    """CIFAR ResNet-8 (16-32-64, one block per stage)."""
    return _small(8, num_classes, in_channels)


@register_model("resnet20")
def resnet20(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> ResNet:
    """CIFAR ResNet-20 (16-32-64, three blocks per stage)."""
    return _small(20, num_classes, in_channels)


@register_model("resnet18")
def resnet18(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> ResNet:
    """CIFAR-style ResNet-18 (64-128-256-512, 3×3 stem, no max-pool)."""
    return ResNet((2, 2, 2, 2), (64, 128, 256, 512), num_classes, in_channels)


@register_model("resnet34")
def resnet34(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> ResNet:
    """CIFAR-style ResNet-34 (64-128-256-512, 3×3 stem, no max-pool)."""
    return ResNet((3, 4, 6, 3), (64, 128, 256, 512), num_classes, in_channels)
