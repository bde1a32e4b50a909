"""Procedural images as data for a teacher with no data and no statistics: does a teacher
trained on Fashion-MNIST or MNIST answer to images made from natural-image priors alone
(1/f noise, dead leaves) in a way a student can learn from? Writes grey 28×28 PNGs into one
class sub-folder, readable as the ``folder`` dataset (``--substitute folder:root=DIR``).

    python benchmarks/explore/procedural.py OUT_DIR [--n 20000] [--kind mix|noise|leaves]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def spectral_noise(rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """Noise whose amplitude spectrum falls as ``1/f^α`` (α in [1, 3]), contrast-stretched to
    [0, 1], half of the images thresholded into a blob on a black background."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    alpha = rng.uniform(1.0, 3.0)
    spectrum = f**-alpha * np.exp(2j * np.pi * rng.random((size, size)))
    img = np.real(np.fft.ifft2(spectrum))
    img = (img - img.min()) / (np.ptp(img) + 1e-8)
    if rng.random() < 0.5:
        cut = rng.uniform(0.4, 0.7)
        img = np.clip((img - cut) / (1 - cut), 0, 1)
    return img


def dead_leaves(rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """Random ellipses and rectangles of random grey levels, layered on a black background."""
    img = np.zeros((size, size))
    yy, xx = np.mgrid[:size, :size]
    for _ in range(rng.integers(2, 12)):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(2, size / 2.5, 2)
        if rng.random() < 0.5:
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        else:
            inside = (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
        img[inside] = rng.uniform(0.1, 1.0)
    return img


KINDS = {"noise": [spectral_noise], "leaves": [dead_leaves], "mix": [spectral_noise, dead_leaves]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--kind", choices=sorted(KINDS), default="mix")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    folder = a.out / "procedural"
    folder.mkdir(parents=True, exist_ok=False)
    rng = np.random.default_rng(a.seed)
    makers = KINDS[a.kind]
    for i in range(a.n):
        img = makers[i % len(makers)](rng)
        Image.fromarray((255 * img).astype(np.uint8), mode="L").save(folder / f"{i:06d}.png")


if __name__ == "__main__":
    main()
