"""Sample grids as PNG files (a minimal encoder over the standard library's zlib)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from .files import atomic_write_bytes


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an 8-bit ``H×W`` (grey) or ``H×W×3`` (RGB) array."""
    if (
        image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] != 3)
    ):
        raise ValueError(f"encode_png needs uint8 H×W or H×W×3, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    colour = 0 if image.ndim == 2 else 2
    rows = image.reshape(h, -1)
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(h))  # filter type 0 per row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def class_grid(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int = 8, pad: int = 1
) -> np.ndarray:
    """A grid with one row per class (by ``labels``) of up to ``per_class`` images in ``[0, 1]``
    (``N×C×H×W``, C = 1 or 3); empty cells stay black. Returns uint8 ``H×W`` or ``H×W×3``."""
    _, c, h, w = images.shape
    grid = np.zeros((num_classes * (h + pad) + pad, per_class * (w + pad) + pad, c), dtype=np.uint8)
    pix = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for k in range(num_classes):
        idx = (labels == k).nonzero().flatten()[:per_class].tolist()
        for j, i in enumerate(idx):
            y, x = pad + k * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = pix[i]
    return grid[:, :, 0] if c == 1 else grid


def save_class_grid(
    path: str | Path, images: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> None:
    """Atomically write :func:`class_grid` as a PNG."""
    atomic_write_bytes(path, encode_png(class_grid(images, labels, num_classes)))
