"""The batch augmentations against naive per-image transcriptions."""

from __future__ import annotations

import pytest
import torch

from dfkd.data.augment import mix_pairs, random_flip, random_shift


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


def naive_mixup(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Image by image: the pairing, then the shares, drawn as documented."""
    gen = torch.Generator().manual_seed(seed)
    b = len(x)
    perm, lam = torch.randperm(b, generator=gen), torch.rand(b, generator=gen)
    return torch.stack([lam[k] * x[k] + (1 - lam[k]) * x[perm[k]] for k in range(b)])


@pytest.mark.parametrize("shape", [(6, 1, 7, 7), (4, 3, 5, 8), (5, 9)])
def test_mixup_matches_naive(shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape)
    torch.testing.assert_close(mix_pairs(x, "mixup", torch.Generator().manual_seed(3)),
                               naive_mixup(x, 3))  # fmt: skip


def test_mixup_blends_within_a_pair_and_none_is_the_identity() -> None:
    x = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 1, 12, 12).contiguous()  # one value each
    blend = mix_pairs(x, "mixup", torch.Generator().manual_seed(0))
    assert (blend.amin((1, 2, 3)) == blend.amax((1, 2, 3))).all()  # a blend of two constants
    assert not torch.equal(blend, x)
    assert ((blend >= 0) & (blend <= 7)).all()
    assert mix_pairs(x, "none", torch.Generator()) is x
    with pytest.raises(ValueError, match="mix kind must be one of"):
        mix_pairs(x, "cutmix", torch.Generator())
