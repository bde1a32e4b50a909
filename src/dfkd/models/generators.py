"""Generators mapping noise ``z`` (``B×nz``) to normalised images (``B×C×S×S``)."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model


class Generator(nn.Module):
    """DAFL-style generator: linear → (BN, ×2 upsample, conv3×3, BN, LeakyReLU)×2 → conv3×3 →
    tanh → BatchNorm without affine (which keeps outputs near the teacher's normalised range).

    Args:
        nz: noise dimension.
        out_channels: image channels.
        image_size: output side; must be divisible by 4.
        width: channels of the first feature map (DAFL uses 128; it halves before the output).
    """

    def __init__(
        self, nz: int = 100, out_channels: int = 1, image_size: int = 28, width: int = 128
    ):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"generator image_size must be divisible by 4, got {image_size}")
        self.nz = nz
        self.init_size = image_size // 4
        self.width = width
        self.fc = nn.Linear(nz, width * self.init_size**2)
        self.body = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width // 2, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width // 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width // 2, out_channels, 3, 1, 1),
            nn.Tanh(),
            nn.BatchNorm2d(out_channels, affine=False),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z.flatten(1)).view(z.shape[0], self.width, self.init_size, self.init_size)
        return self.body(x)


@register_model("dafl_generator", kind="generator")
def dafl_generator(nz: int = 100, out_channels: int = 1, image_size: int = 28) -> Generator:
    """The DAFL generator (128 channels at S/4 and S/2, 64 at S)."""
    return Generator(nz, out_channels, image_size, width=128)


@register_model("light_generator", kind="generator")
def light_generator(nz: int = 64, out_channels: int = 1, image_size: int = 28) -> Generator:
    """A CPU-sized generator of the same shape with a quarter of the width (32 channels)."""
    return Generator(nz, out_channels, image_size, width=32)
