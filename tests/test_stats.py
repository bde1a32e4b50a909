"""Statistics files: collection against a direct computation, round trip, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.errors import DfkdError
from dfkd.losses.spectral import amplitude_spectrum
from dfkd.teachers.stats import TeacherStats, collect_stats


def test_collect_matches_direct_computation(digits: dfkd.Data) -> None:
    teacher = dfkd.create_model("lenet5_nobn", num_classes=10, in_channels=1, image_size=8).eval()
    st = collect_stats(teacher, digits, batch_size=300)  # several batches, uneven last one
    assert st.layers == ["features.0", "features.3", "features.6", "fc1.0", "fc"]
    with torch.no_grad():
        f = teacher.features[0](digits.x_train)
    assert torch.allclose(st.mean["features.0"], f.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(st.var["features.0"], f.var(dim=(0, 2, 3), unbiased=False), atol=1e-5)
    assert torch.allclose(st.spectrum["features.0"], amplitude_spectrum(f).mean(0), atol=1e-4)
    assert "fc" not in st.spectrum  # 2-D outputs have no spatial spectrum
    assert st.meta["samples"] == len(digits.x_train)


def test_round_trip_and_checks(tmp_path: Path, digits: dfkd.Data) -> None:
    teacher = dfkd.create_model("lenet5_nobn", num_classes=10, in_channels=1, image_size=8)
    st = collect_stats(teacher, digits, ["features.0", "fc"], max_samples=100)
    st.save(tmp_path / "s.safetensors")
    back = TeacherStats.load(tmp_path / "s.safetensors")
    assert back.layers == st.layers and back.meta == st.meta
    assert torch.equal(back.spectrum["features.0"], st.spectrum["features.0"])
    back.check(teacher)
    with pytest.raises(DfkdError, match="does not have"):
        back.check(dfkd.create_model("resnet8", in_channels=1, image_size=8))
    wide = dfkd.create_model("lenet5_nobn", image_size=8)
    wide.features[0] = torch.nn.Conv2d(1, 7, 5, padding=2)
    with pytest.raises(DfkdError, match="7"):
        back.check(wide)
    other = tmp_path / "w.safetensors"
    dfkd.io.files.save_tensors(other, {"a": torch.zeros(1)})
    with pytest.raises(DfkdError, match="dfkd stats collect"):
        TeacherStats.load(other)


def test_collect_refuses_a_path_where_layers_go(teacher_dir, tmp_path) -> None:
    with pytest.raises(dfkd.ConfigError, match="list of module paths"):
        dfkd.collect_teacher_stats(teacher_dir, "digits", tmp_path / "s.safetensors")
    assert not (tmp_path / "s.safetensors").exists()
