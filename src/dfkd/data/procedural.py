"""Image programs: images drawn from natural-image priors alone, in pixel space ``[0, 1]``,
``B×C×H×W``, from a seeded ``torch.Generator`` (no data, no files). ``spectral_noise``: an
amplitude spectrum falling as ``1/f^α``; ``dead_leaves``: occluding ellipses and rectangles on
a black background."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def spectral_noise(
    n: int, shape: tuple[int, int, int], gen: torch.Generator,
    alpha: tuple[float, float] = (1.0, 3.0), threshold: float = 0.5,
) -> torch.Tensor:  # fmt: skip
    """``n`` images whose amplitude spectrum falls as ``1/f^α`` (α uniform in ``alpha``, one
    random phase per frequency and channel), each stretched to span ``[0, 1]``; a share
    ``threshold`` of them is cut at a random level in ``[0.4, 0.7]`` and stretched again, a
    bright blob on a black background."""
    c, h, w = shape
    f = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.fftfreq(w)[None, :] ** 2)
    f[0, 0] = 1.0
    a = _uniform(n, *alpha, gen).view(n, 1, 1, 1)
    phase = torch.exp(2j * math.pi * torch.rand(n, c, h, w, generator=gen))
    img = torch.fft.ifft2(f.pow(-a) * phase).real
    img = _stretch(img)
    cut = _uniform(n, 0.4, 0.7, gen).view(n, 1, 1, 1)
    cut = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < threshold, cut, torch.zeros(()))
    return _stretch(((img - cut) / (1 - cut)).clamp(0, 1))


def dead_leaves(
    n: int, shape: tuple[int, int, int], gen: torch.Generator, leaves: tuple[int, int] = (2, 12),
) -> torch.Tensor:  # fmt: skip
    """``n`` images of ``leaves[0]``–``leaves[1]`` shapes (ellipses or rectangles, half each;
    centres uniform, radii 2 to ``size/2.5`` pixels; each a random grey level in ``[0.1, 1]``,
    per channel for colour images) painted in turn over a black background."""
    c, h, w = shape
    k = leaves[1]
    yy = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    xx = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    cy, cx = (torch.rand(n, k, 1, 1, generator=gen) * s for s in (h, w))
    ry, rx = (2 + (s / 2.5 - 2) * torch.rand(n, k, 1, 1, generator=gen) for s in (h, w))
    ellipse = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    box = ((yy - cy).abs() <= ry) & ((xx - cx).abs() <= rx)
    round_ = torch.rand(n, k, 1, 1, generator=gen) < 0.5
    count = torch.randint(leaves[0], leaves[1] + 1, (n, 1, 1, 1), generator=gen)
    shown = torch.arange(k).view(1, k, 1, 1) < count
    masks = torch.where(round_, ellipse, box) & shown  # n × k × h × w
    grey = 0.1 + 0.9 * torch.rand(n, k, c, generator=gen)
    img = torch.zeros(n, c, h, w)
    for j in range(k):  # later leaves occlude earlier ones
        m = masks[:, j : j + 1]
        img = torch.where(m, grey[:, j].view(n, c, 1, 1), img)
    return img


def _stretch(img: torch.Tensor) -> torch.Tensor:
    """Each image linearly mapped to span ``[0, 1]`` (a flat image to 0)."""
    flat = img.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    span = (hi - lo).clamp_min(1e-8)
    return ((flat - lo[:, None]) / span[:, None]).view_as(img)


PROGRAMS = {"noise": spectral_noise, "leaves": dead_leaves}


def program_images(
    n: int, shape: tuple[int, int, int], gen: torch.Generator,
    programs: Sequence[str] = ("noise", "leaves"),
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> torch.Tensor:  # fmt: skip
    """``n`` images in pixel space from ``programs`` in equal shares (the first ones one more
    where ``n`` does not divide), shuffled; ``options[name]`` goes to that program."""
    k, options = len(programs), options or {}
    counts = [n // k + (i < n % k) for i in range(k)]
    parts = [PROGRAMS[p](c, shape, gen, **options.get(p, {}))
             for p, c in zip(programs, counts, strict=True) if c]  # fmt: skip
    return torch.cat(parts)[torch.randperm(n, generator=gen)]
