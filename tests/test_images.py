"""PNG encoding (decoded back with Pillow) and the class grid layout."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from dfkd.io.images import class_grid, encode_png


@pytest.mark.parametrize("shape", [(5, 7), (4, 6, 3)])
def test_png_round_trip(shape: tuple[int, ...]) -> None:
    Image = pytest.importorskip("PIL.Image")
    arr = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    back = np.asarray(Image.open(io.BytesIO(encode_png(arr))))
    np.testing.assert_array_equal(back, arr)
    with pytest.raises(ValueError):
        encode_png(arr.astype(np.float32))


def test_class_grid_rows_follow_labels() -> None:
    imgs = torch.stack([torch.full((1, 2, 2), v) for v in (0.2, 0.4, 0.6, 1.0)])
    labels = torch.tensor([2, 0, 2, 1])
    g = class_grid(imgs, labels, num_classes=3, per_class=2, pad=1)
    assert g.shape == (3 * 3 + 1, 2 * 3 + 1) and g.dtype == np.uint8
    cell = lambda r, c: int(g[1 + 3 * r, 1 + 3 * c])  # noqa: E731
    assert (cell(0, 0), cell(1, 0), cell(2, 0), cell(2, 1)) == (102, 255, 51, 153)
    assert cell(0, 1) == 0 and cell(1, 1) == 0  # empty cells stay black
    rgb = class_grid(torch.rand(3, 3, 4, 4), torch.tensor([0, 1, 1]), 2)
    assert rgb.ndim == 3 and rgb.shape[2] == 3
