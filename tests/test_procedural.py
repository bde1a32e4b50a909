"""Image programs (1/f noise, dead leaves) and the ``procedural`` source: their spectra and
shapes against naive references, the source's normalisation, seeding and resume, and that it
reads no dataset images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_fabric import Fabric

import dfkd
from dfkd.data.procedural import dead_leaves, spectral_noise
from dfkd.errors import ConfigError
from dfkd.sources import ProceduralImages, SourceEnv

from .conftest import digits_env


def _radial_slope(images: np.ndarray) -> float:
    """Log-log slope of the mean amplitude spectrum against the radial frequency (naive)."""
    h, w = images.shape[1:]
    amp = np.abs(np.fft.fft2(images - images.mean(axis=(1, 2), keepdims=True))).mean(0)
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    f = np.sqrt(fx**2 + fy**2)
    pick = (f > 0) & (f < 0.5)
    return float(np.polyfit(np.log(f[pick]), np.log(amp[pick]), 1)[0])


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_spectral_noise_falls_as_one_over_f_to_the_alpha(alpha: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x = spectral_noise(256, (1, 32, 32), gen, alpha=(alpha, alpha), threshold=0.0)
    assert x.shape == (256, 1, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert abs(_radial_slope(x[:, 0].numpy()) + alpha) < 0.15


def test_spectral_noise_thresholds_a_share_into_blobs_on_black() -> None:
    gen = torch.Generator().manual_seed(0)
    x = spectral_noise(400, (1, 16, 16), gen, threshold=0.5)
    black = (x.flatten(1) == 0).float().mean(1)  # a stretched image has one black pixel
    assert 0.35 < (black > 0.2).float().mean() < 0.65
    assert torch.allclose(x.flatten(1).amax(1), torch.ones(400))


def test_dead_leaves_paint_grey_shapes_on_black() -> None:
    gen = torch.Generator().manual_seed(1)
    x = dead_leaves(64, (1, 20, 20), gen, leaves=(1, 1))
    for img in x[:, 0]:
        levels = img.unique()
        assert (levels > 0).sum() == 1  # one leaf, one grey level (and black around it)
        assert ((levels == 0) | ((levels >= 0.1) & (levels <= 1))).all()
    many = dead_leaves(64, (3, 20, 20), gen, leaves=(5, 8))
    assert many.shape == (64, 3, 20, 20)
    distinct = [len(img[0].unique()) for img in many]
    assert max(distinct) <= 9 and np.mean(distinct) > 3  # later leaves occlude earlier ones


def _env(data: dfkd.Data, seed: int = 0) -> SourceEnv:
    return SourceEnv(fabric=Fabric(accelerator="cpu", devices=1), data=data, teacher=None,
                     student=None, batch_size=8, seed=seed)  # fmt: skip


def test_procedural_source_reads_no_images_and_resumes(digits: dfkd.Data) -> None:
    empty = dfkd.Data.input_space("digits", digits.input_shape, 10, digits.mean, digits.std)
    src = ProceduralImages(shift=1, flip=True)
    src.setup(_env(empty))
    state = src.state_dict()
    a = src.sample(10)
    assert a.x.shape == (10, *digits.input_shape) and a.labels is None
    pixels = a.x * torch.tensor(digits.std).view(1, -1, 1, 1) + torch.tensor(digits.mean).view(
        1, -1, 1, 1
    )
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5  # the dataset's normalisation
    b = src.sample(10)
    assert not torch.equal(a.x, b.x)  # fresh images every draw
    src.load_state_dict(state)
    assert torch.equal(src.sample(10).x, a.x)  # resumed bit-exactly
    other = ProceduralImages(shift=1, flip=True)
    other.setup(_env(empty, seed=1))
    assert not torch.equal(other.sample(10).x, a.x)


def test_procedural_source_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="programs"):
        ProceduralImages(programs=["fractals"])
    with pytest.raises(ConfigError, match="alpha"):
        ProceduralImages(alpha=[2.0, 1.0])
    with pytest.raises(ConfigError, match="leaves"):
        ProceduralImages(leaves=[0, 3])
    with pytest.raises(ConfigError, match="shift"):
        ProceduralImages(shift=-1)


def test_procedural_probe_sample_is_fixed_and_draws_nothing(digits: dfkd.Data) -> None:
    src = ProceduralImages()
    src.setup(_env(digits))
    before = src.state_dict()["gen"].clone()
    first = src.pool_images(20)
    assert torch.equal(src.state_dict()["gen"], before)  # the run's draws are untouched
    assert torch.equal(src.pool_images(20), first)


def test_procedural_method_distils_and_measures_its_images(
    teacher_dir: Path, tmp_path: Path
) -> None:
    """A data-free run with no statistics and no generator; what it draws is measured against
    the test split like a synthesising source's pool."""
    m = dfkd.distill(teacher_dir, "lenet5_half", "procedural", "digits", out=tmp_path / "r",
                     overrides=["rounds=4", "eval_every=2"], progress=False)  # fmt: skip
    assert m["completed"] and "statistics" not in m
    assert 0 <= m["synth_precision"] <= 1 and 0 <= m["synth_recall"] <= 1


def test_pixel_inversion_can_start_from_procedural_images(
    digits: dfkd.Data, teacher_dir: Path
) -> None:
    """``init: procedural``: the first pixels are the programs' images, in the dataset's
    normalisation, from the source's own seed."""
    from dfkd.data.procedural import program_images
    from dfkd.sources import build_source

    src = build_source("pixels", {"init": "procedural", "synth_batch_size": 12})
    src.setup(digits_env(digits, teacher_dir, 12))
    x = src.draw().x.detach()
    mean = torch.tensor(digits.mean).view(1, -1, 1, 1)
    std = torch.tensor(digits.std).view(1, -1, 1, 1)
    gen = torch.Generator().manual_seed(29)  # the source's seed (0 · 1000 + 29)
    expect = (program_images(12, digits.input_shape, gen) - mean) / std
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]  # the jitter's, undone
    assert any(torch.allclose(torch.roll(x, d, (2, 3)), expect, atol=1e-6) for d in shifts)
    with pytest.raises(ConfigError, match="init must be"):
        build_source("pixels", {"init": "fractal"})
