"""Dataset options that change the input space of any dataset: image size and channel count
(``fashion-mnist:size=32,channels=3`` brings a 28×28 grayscale dataset to the 32×32×3 of the
CIFAR architectures and presets)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Data

#: options every dataset takes, handled here rather than by its loader
RESHAPE_OPTIONS = ("size", "channels", "fit")
FITS = ("resize", "pad")


def _size(value: Any) -> tuple[int, int]:
    """``32`` or ``[32, 32]`` or ``"32x32"`` → ``(32, 32)``."""
    if isinstance(value, str) and "x" in value:
        value = value.split("x")
    vals = list(value) if isinstance(value, (list, tuple)) else [value, value]
    try:
        h, w = (int(v) for v in vals)
    except (TypeError, ValueError):
        h = w = 0
    if len(vals) != 2 or h < 1 or w < 1:
        raise ConfigError(f"dataset option size must be N, HxW or [H, W] (positive), got {value!r}")
    return h, w


def _pixels_to(p: torch.Tensor, hw: tuple[int, int], channels: int, fit: str) -> torch.Tensor:
    """Pixel images in ``[0, 1]`` at ``hw`` and ``channels`` (gray repeated, colour averaged);
    ``fit="resize"`` interpolates bilinearly, ``fit="pad"`` centres on black without scaling."""
    if p.shape[1] != channels:
        p = p.mean(dim=1, keepdim=True).expand(-1, channels, -1, -1)
    (h, w), (ih, iw) = hw, p.shape[2:]
    if (h, w) == (ih, iw):
        return p.contiguous()
    if fit == "resize":
        return F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    if h < ih or w < iw:
        raise ConfigError(f"fit=pad cannot shrink {ih}×{iw} images to {h}×{w}; use fit=resize")
    top, left = (h - ih) // 2, (w - iw) // 2
    return F.pad(p, (left, w - iw - left, top, h - ih - top))


def _stats_to(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    """Per-channel normalisation values for ``channels`` channels: kept, repeated (gray) or
    averaged (to gray)."""
    if len(values) == channels:
        return tuple(values)
    if len(values) == 1:
        return tuple(values) * channels
    return (sum(values) / len(values),)


def reshape_data(data: Data, size: Any = None, channels: int | None = None,
                 fit: str = "resize") -> Data:  # fmt: skip
    """``data`` with its images brought to ``size`` and ``channels``; the normalisation is the
    dataset's own (a gray mean/std repeated over the new channels)."""
    if fit not in FITS:
        raise ConfigError(f"dataset option fit must be one of {', '.join(FITS)}, got {fit!r}")
    hw = data.image_size if size is None else _size(size)
    c = data.channels if channels is None else int(channels)
    if c < 1 or (c != data.channels and 1 not in (c, data.channels)):
        raise ConfigError(
            f"dataset option channels={channels}: '{data.name}' has {data.channels} channel(s); "
            "only gray → N channels or N channels → gray is defined"
        )
    mean, std = _stats_to(data.mean, c), _stats_to(data.std, c)
    m_new, s_new = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)

    def convert(x: torch.Tensor) -> torch.Tensor:
        return (_pixels_to(data.denormalize(x), hw, c, fit) - m_new) / s_new

    return replace(data, x_train=convert(data.x_train), x_test=convert(data.x_test),
                   mean=tuple(mean), std=tuple(std))  # fmt: skip


def spec_name(name: str, options: dict[str, Any]) -> str:
    """The canonical ``NAME:key=value,...`` of a dataset loaded with ``options`` (sorted keys),
    what model cards record so the same input space can be loaded again."""
    if not options:
        return name

    def fmt(v: Any) -> str:
        return "x".join(str(int(i)) for i in v) if isinstance(v, (list, tuple)) else str(v)

    return name + ":" + ",".join(f"{k}={fmt(options[k])}" for k in sorted(options))
