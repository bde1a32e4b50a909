"""LeNet-5 and LeNet-5-half (the DAFL / DFAD MNIST pair), with or without BatchNorm."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model


class LeNet5(nn.Module):
    """LeNet-5: conv5(c1) → pool → conv5(c2) → pool → conv(c3) → fc(f) → fc(classes).

    The last convolution covers the remaining spatial extent, so any image size ≥ 8 works; on
    inputs smaller than 20 pixels the second convolution is padded.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
        widths: tuple[int, int, int, int] = (6, 16, 120, 84),
        bn: bool = True,
    ) -> None:
        super().__init__()
        c1, c2, c3, f = widths

        def block(cin: int, cout: int, k: int, pad: int) -> list[nn.Module]:
            conv = nn.Conv2d(cin, cout, k, padding=pad, bias=not bn)
            return [conv, *([nn.BatchNorm2d(cout)] if bn else []), nn.ReLU(inplace=True)]

        s = image_size // 2  # after the first pool
        pad2 = 0 if s >= 10 else 2
        s2 = (s + 2 * pad2 - 4) // 2
        self.features = nn.Sequential(
            *block(in_channels, c1, 5, 2),
            nn.MaxPool2d(2),
            *block(c1, c2, 5, pad2),
            nn.MaxPool2d(2),
            *block(c2, c3, s2, 0),
            nn.Flatten(),
        )
        self.fc1 = nn.Sequential(nn.Linear(c3, f), nn.ReLU(inplace=True))
        self.fc = nn.Linear(f, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fc1(self.features(x)))


FULL = (6, 16, 120, 84)
HALF = (3, 8, 60, 42)


@register_model("lenet5")
def lenet5(num_classes: int = 10, in_channels: int = 1, image_size: int = 28, bn: bool = True):
    """LeNet-5 (6-16-120-84) with BatchNorm."""
    return LeNet5(num_classes, in_channels, image_size, FULL, bn)


@register_model("lenet5_nobn")
def lenet5_nobn(num_classes: int = 10, in_channels: int = 1, image_size: int = 28):
    """LeNet-5 (6-16-120-84) without BatchNorm."""
    return LeNet5(num_classes, in_channels, image_size, FULL, False)


@register_model("lenet5_half")
def lenet5_half(num_classes: int = 10, in_channels: int = 1, image_size: int = 28, bn: bool = True):
    """LeNet-5-half (3-8-60-42) with BatchNorm."""
    return LeNet5(num_classes, in_channels, image_size, HALF, bn)


@register_model("lenet5_half_nobn")
def lenet5_half_nobn(num_classes: int = 10, in_channels: int = 1, image_size: int = 28):
    """LeNet-5-half (3-8-60-42) without BatchNorm."""
    return LeNet5(num_classes, in_channels, image_size, HALF, False)
