"""Cheap, seeded batch augmentations for normalised image tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(
    x: torch.Tensor, max_shift: int, fill: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` whole pixels, filling with ``fill``
    (``1×C×1×1``, e.g. the normalised value of a black pixel): output pixel ``(i, j)`` of an
    image drawn the shift ``(dx, dy)`` is input pixel ``(i + dy, j + dx)``."""
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    d = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=gen)
    d = d.to(x.device, non_blocking=True)  # drawn on the host: no device sync
    fill = fill.to(x.device, x.dtype, non_blocking=True)
    s = max_shift
    padded = F.pad(x - fill, (s, s, s, s)) + fill
    rows = torch.arange(h, device=x.device) + s + d[:, 1:]  # b × h
    cols = torch.arange(w, device=x.device) + s + d[:, :1]  # b × w
    index = (rows[:, :, None] * (w + 2 * s) + cols[:, None, :]).view(b, 1, h * w)
    flat = padded.reshape(b, c, -1).gather(2, index.expand(b, c, h * w))
    return flat.view(b, c, h, w)


def random_flip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each image horizontally with probability ``p``."""
    mask = (torch.rand(len(x), generator=gen) < p).to(x.device, non_blocking=True)
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def shift_flip(
    x: torch.Tensor, shift: int, flip: bool, fill: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """:func:`random_shift` by up to ``shift`` pixels, then :func:`random_flip` if ``flip``."""
    x = random_shift(x, shift, fill, gen)
    return random_flip(x, gen) if flip else x


def random_resized_crop(
    x: torch.Tensor,
    gen: torch.Generator,
    scale: tuple[float, float] = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
) -> torch.Tensor:
    """A random crop of each image covering a share ``scale`` of its area with aspect ratio in
    ``ratio`` (log-uniform), resized back to the image's size (bilinear) and, with ``flip``,
    flipped horizontally with probability ½ — differentiable with respect to ``x``."""
    b, _, h, w = x.shape
    area = scale[0] + torch.rand(b, generator=gen) * (scale[1] - scale[0])
    log_r = torch.log(torch.tensor(ratio))
    r = torch.exp(log_r[0] + torch.rand(b, generator=gen) * (log_r[1] - log_r[0]))
    sw, sh = (area * r).sqrt().clamp(max=1.0), (area / r).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - sw)
    cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - sh)
    sign = torch.ones(b)
    if flip:
        sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sw * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = sh, cy
    theta = theta.to(x.device, x.dtype, non_blocking=True)
    grid = F.affine_grid(theta, [b, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


#: how replayed images are mixed in pairs: not at all, or blended (mixup)
MIXES = ("none", "mixup")


def mix_pairs(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Each image blended with another of the batch (a random pairing) with a share
    ``λ ~ U(0, 1)`` (Beta(1, 1)) of its own per image (``"mixup"``); ``"none"`` returns ``x``.
    Only the images change: what they are taught is the teacher's answer on the blend."""
    if kind == "none" or len(x) < 2:
        return x
    if kind != "mixup":
        raise ValueError(f"mix kind must be one of {MIXES}, got {kind!r}")
    b = len(x)
    other = x[torch.randperm(b, generator=gen).to(x.device, non_blocking=True)]
    lam = torch.rand(b, generator=gen).to(x.device, x.dtype, non_blocking=True)
    lam = lam.view(b, *[1] * (x.ndim - 1))
    return lam * x + (1 - lam) * other
