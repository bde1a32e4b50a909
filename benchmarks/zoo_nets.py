"""The teacher zoo's networks, written in plain PyTorch with no dfkd code: what a user brings.

Each factory takes ``num_classes`` and ``in_channels`` (28×28 inputs) and is importable as
``zoo_nets:NAME`` while ``benchmarks/`` is on the path (as it is for ``python benchmarks/...``).
"""

from __future__ import annotations

import torch
from torch import nn


def cnn_nobn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A BN-free CNN (trained long, so its logits grow large)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes),
    )  # fmt: skip


def _vgg_block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def vgg_bn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A VGG-style network with BatchNorm: two 3×3 convolutions per stage, three stages."""
    return nn.Sequential(
        *_vgg_block(in_channels, 32), *_vgg_block(32, 32), nn.MaxPool2d(2),
        *_vgg_block(32, 64), *_vgg_block(64, 64), nn.MaxPool2d(2),
        *_vgg_block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(128, num_classes),
    )  # fmt: skip


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def resnet_small(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A small ResNet-style network with BatchNorm (three stages of one residual block)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        _Residual(16, 16, 1), _Residual(16, 32, 2), _Residual(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )  # fmt: skip


def mlp(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A BN-free multi-layer perceptron on the flattened image."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_channels * 28 * 28, 256), nn.ReLU(),
        nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, num_classes),
    )  # fmt: skip
