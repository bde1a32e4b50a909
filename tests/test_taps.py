"""Taps: layer outputs and BatchNorm statistics by module path, hooks removed on exit."""

from __future__ import annotations

import pytest
import torch

from dfkd.errors import ConfigError
from dfkd.losses.bn import bn_stat_loss
from dfkd.models import create_model
from dfkd.teachers.taps import Taps, bn_layers, layer_names


def test_outputs_by_path_and_hooks_removed() -> None:
    model = create_model("lenet5").eval()
    x = torch.randn(4, 1, 28, 28)
    with Taps(model, layers=["features.0", "fc1"]) as taps:
        model(x)
        assert taps.outputs["features.0"].shape == (4, 6, 28, 28)
        assert taps.outputs["fc1"].shape == (4, 84)
    taps.clear()
    model(x)
    assert taps.outputs == {}  # no hooks left behind
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_unknown_layer_is_suggested() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'features\.0'"):
        Taps(create_model("lenet5"), layers=["featurs.0"])


def test_bn_layers_found_only_where_present() -> None:
    assert len(bn_layers(create_model("lenet5"))) == 3
    assert bn_layers(create_model("lenet5_nobn")) == []
    assert "features.0" in layer_names(create_model("lenet5"))


def test_bn_statistics_match_batchnorm_and_carry_gradient() -> None:
    model = create_model("lenet5").eval()
    x = torch.randn(8, 1, 28, 28, requires_grad=True)
    with Taps(model, bn=True) as taps:
        model(x)
    assert list(taps.bn) == [p for p, _ in bn_layers(model)]
    # what the first BN layer normalises in training mode, computed independently
    conv = model.features[0]
    pre = conv(x)
    mean = pre.mean(dim=(0, 2, 3))
    var = pre.var(dim=(0, 2, 3), unbiased=False)
    m, v = taps.bn["features.1"]
    assert torch.allclose(m, mean, atol=1e-5) and torch.allclose(v, var, atol=1e-5)
    loss = bn_stat_loss(list(taps.bn.values()), list(taps.bn_refs.values()), first_multiplier=10)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    running = taps.bn_refs["features.1"][0]
    assert not running.requires_grad  # references are buffers, not trained


def test_captures_survive_inplace_activations() -> None:
    model = create_model("lenet5_nobn").eval()  # conv → ReLU(inplace=True)
    x = torch.randn(2, 1, 28, 28)
    with Taps(model, layers=["features.0"]) as taps:
        model(x)
    assert torch.allclose(taps.outputs["features.0"], model.features[0](x))
    assert (taps.outputs["features.0"] < 0).any()  # not the ReLU'd tensor
