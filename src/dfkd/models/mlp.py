"""A multi-layer perceptron classifier."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model


class MLP(nn.Module):
    """Flatten → ``hidden`` fully connected ReLU layers (optional BatchNorm1d) → logits."""

    def __init__(self, in_features: int, num_classes: int, hidden: tuple[int, ...], bn: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_features
        for h in hidden:
            layers += [nn.Linear(d, h), *([nn.BatchNorm1d(h)] if bn else []), nn.ReLU(inplace=True)]
            d = h
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(d, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@register_model("mlp")
def mlp(
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    hidden: tuple[int, ...] = (256, 128),
    bn: bool = False,
) -> MLP:
    """MLP with hidden widths ``hidden`` (default 256, 128)."""
    return MLP(in_channels * image_size * image_size, num_classes, tuple(hidden), bn)
