"""Cheap, seeded batch augmentations for normalised image tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(
    x: torch.Tensor, max_shift: int, fill: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` whole pixels, filling with ``fill``
    (``1×C×1×1``, e.g. the normalised value of a black pixel)."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    d = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=gen).float()
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = 2 * d[:, 0] / w
    theta[:, 1, 2] = 2 * d[:, 1] / h
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    fill = fill.to(x.device, x.dtype)
    return F.grid_sample(x - fill, grid, mode="nearest", align_corners=False) + fill


def random_flip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each image horizontally with probability ``p``."""
    mask = (torch.rand(len(x), generator=gen) < p).to(x.device)
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def shift_flip(
    x: torch.Tensor, shift: int, flip: bool, fill: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """:func:`random_shift` by up to ``shift`` pixels, then :func:`random_flip` if ``flip``."""
    x = random_shift(x, shift, fill, gen)
    return random_flip(x, gen) if flip else x
