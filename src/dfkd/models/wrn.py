"""Wide ResNets (Zagoruyko & Komodakis) in the CIFAR form used by DFKD papers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model


class WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3×3-BN-ReLU-conv3×3 plus shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (
            None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """WRN-depth-k: three stages of (depth-4)/6 wide blocks, widths 16k, 32k, 64k."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WRN depth must be 6n+4")
        n = (depth - 4) // 6
        w = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, w[0], 3, 1, 1, bias=False)
        stages = []
        cin = w[0]
        for i in range(3):
            stages += [
                WideBlock(
                    cin if j == 0 else w[i + 1], w[i + 1], (1 if i == 0 else 2) if j == 0 else 1
                )
                for j in range(n)
            ]
            cin = w[i + 1]
        self.blocks = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_model("wrn16_1")
def wrn16_1(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> WideResNet:
    """WRN-16-1."""
    return WideResNet(16, 1, num_classes, in_channels)


@register_model("wrn16_2")
def wrn16_2(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> WideResNet:
    """WRN-16-2."""
    return WideResNet(16, 2, num_classes, in_channels)


@register_model("wrn40_2")
def wrn40_2(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> WideResNet:
    """WRN-40-2."""
    return WideResNet(40, 2, num_classes, in_channels)
