"""Dataset options that change any dataset's input space (``NAME:size=…,channels=…``)."""

from __future__ import annotations

import json

import pytest
import torch

import dfkd
from dfkd.api import resolve_config
from dfkd.data.reshape import preset_key, reshape_data, spec_name
from dfkd.errors import ConfigError
from dfkd.methods import METHODS


def test_gray_digits_to_32x32_colour_against_a_naive_reference() -> None:
    raw = dfkd.load_dataset("digits")
    big = dfkd.load_dataset("digits:size=32,channels=3")
    assert big.input_shape == (3, 32, 32) and big.name == "digits:channels=3,size=32"
    assert big.mean == raw.mean * 3 and big.std == raw.std * 3
    # the same pixels, each channel the bilinear resize of the gray image, renormalised
    pix = raw.denormalize(raw.x_test[:4])
    ref = torch.nn.functional.interpolate(pix, size=(32, 32), mode="bilinear", align_corners=False)
    ref = (ref.clamp(0, 1) - raw.mean[0]) / raw.std[0]
    for c in range(3):
        assert torch.allclose(big.x_test[:4, c : c + 1], ref, atol=1e-5)
    assert torch.equal(big.y_train, raw.y_train)


def test_pad_centres_without_scaling_and_refuses_to_shrink() -> None:
    raw = dfkd.load_dataset("digits")
    padded = dfkd.load_dataset("digits", size=12, fit="pad")
    low = raw.bounds[0].flatten()[0]
    assert torch.allclose(padded.x_train[:, :, 2:10, 2:10], raw.x_train, atol=1e-6)
    assert torch.allclose(padded.x_train[:, :, :2], low.expand(len(raw.x_train), 1, 2, 12))
    with pytest.raises(ConfigError, match="cannot shrink"):
        reshape_data(raw, size=4, fit="pad")


def test_colour_to_gray_averages_and_bad_options_are_one_line_errors() -> None:
    rgb = dfkd.load_dataset("digits:channels=3")
    gray = reshape_data(rgb, channels=1)
    assert gray.input_shape == (1, 8, 8)
    assert torch.allclose(gray.x_test, dfkd.load_dataset("digits").x_test, atol=1e-5)
    for spec, match in [("digits:size=0", "size must be"), ("digits:fit=crop", "fit must be"),
                        ("digits:channels=0", "channels=0")]:  # fmt: skip
        with pytest.raises(ConfigError, match=match) as e:
            dfkd.load_dataset(spec)
        assert "\n" not in str(e.value)


def test_presets_follow_the_input_space() -> None:
    """A reshaped dataset gets the method defaults (sized for 32×32 colour), not the presets
    of its 28×28 gray original; loader options keep the dataset's preset."""
    assert preset_key("fashion-mnist:size=32,channels=3") is None
    assert preset_key("mnist10k:split_seed=1") == "mnist10k"
    assert preset_key("fashion-mnist", {"size": 32}) is None
    nayer = METHODS.get("nayer")
    assert resolve_config("nayer", "fashion-mnist:size=32,channels=3").rounds == \
        nayer.defaults["rounds"]  # fmt: skip
    assert resolve_config("nayer", "mnist10k:split_seed=1").rounds == \
        nayer.presets["mnist10k"]["rounds"]  # fmt: skip
    assert spec_name("a", {"size": [3, 4], "channels": 3}) == "a:channels=3,size=3x4"


def test_a_card_of_a_reshaped_dataset_loads_that_input_space_again(tmp_path) -> None:
    data = dfkd.load_dataset("digits:size=16,channels=3")
    card = dfkd.train_teacher(data, "resnet8", epochs=1, out=tmp_path / "t", batch_size=64,
                              progress=False)  # fmt: skip
    saved = json.loads((tmp_path / "t" / "teacher.json").read_text())
    again = dfkd.load_dataset(saved["dataset"])
    assert again.input_shape == (3, 16, 16) and torch.equal(again.x_test, data.x_test)
    assert dfkd.evaluate(tmp_path / "t", saved["dataset"])["accuracy"] == card["test_accuracy"]
