"""The batch augmentations against naive per-image transcriptions."""

from __future__ import annotations

import pytest
import torch

from dfkd.data.augment import random_flip, random_shift


def naive_shift(x: torch.Tensor, d: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Pixel by pixel: output (i, j) of image k is input (i + dy, j + dx), else ``fill``."""
    b, c, h, w = x.shape
    out = fill.expand(b, c, h, w).clone()
    for k in range(b):
        dx, dy = int(d[k, 0]), int(d[k, 1])
        for i in range(h):
            for j in range(w):
                if 0 <= i + dy < h and 0 <= j + dx < w:
                    out[k, :, i, j] = x[k, :, i + dy, j + dx]
    return out


@pytest.mark.parametrize("shape,shift", [((6, 1, 7, 7), 2), ((4, 3, 5, 8), 3), ((3, 2, 4, 4), 5)])
def test_random_shift_matches_naive(shape: tuple[int, ...], shift: int) -> None:
    x = torch.randn(*shape)
    fill = torch.randn(1, shape[1], 1, 1)
    d = torch.randint(-shift, shift + 1, (shape[0], 2), generator=torch.Generator().manual_seed(5))
    got = random_shift(x, shift, fill, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, naive_shift(x, d, fill))


def test_random_shift_passes_gradients_to_the_kept_pixels() -> None:
    x = torch.randn(4, 1, 6, 6, requires_grad=True)
    random_shift(x, 2, torch.zeros(1, 1, 1, 1), torch.Generator().manual_seed(1)).sum().backward()
    assert x.grad is not None
    assert set(x.grad.unique().tolist()) <= {0.0, 1.0} and x.grad.sum() > 0


def test_random_shift_zero_is_identity_and_flip_mirrors() -> None:
    x = torch.randn(3, 2, 4, 5)
    assert random_shift(x, 0, torch.zeros(1, 2, 1, 1), torch.Generator()) is x
    flipped = random_flip(x, torch.Generator().manual_seed(0), p=1.0)
    torch.testing.assert_close(flipped, x.flip(3))
