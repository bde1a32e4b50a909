"""Registries and the model zoo: every registered model is built and run at every input size."""

from __future__ import annotations

import pytest
import torch

import dfkd
from dfkd.errors import ConfigError
from dfkd.models import MODELS, create_generator, create_model, list_models
from dfkd.registry import Registry


def test_registry_register_lookup_and_suggestion() -> None:
    reg: Registry[int] = Registry("widgets")
    reg.register("alpha", 1, colour="red")
    reg.register("beta", 2)
    assert reg.get("alpha") == 1 and "beta" in reg and len(reg) == 2
    assert reg.names("a*") == ["alpha"] and reg.names(colour="red") == ["alpha"]
    with pytest.raises(ConfigError, match=r"unknown widget 'alpah'; did you mean 'alpha'\?"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha", 3)


def test_builtin_registries_are_populated() -> None:
    assert {"digits", "mnist", "mnist10k", "fashion-mnist", "cifar10", "cifar100", "folder"} <= set(
        dfkd.list_datasets()
    )
    assert "kd" in dfkd.list_methods()
    assert {
        "mlp",
        "lenet5",
        "lenet5_nobn",
        "lenet5_half",
        "lenet5_half_nobn",
        "resnet8",
        "resnet20",
        "resnet18",
        "resnet34",
        "wrn16_1",
        "wrn16_2",
        "wrn40_2",
    } <= set(list_models(kind="classifier"))
    assert {"dafl_generator", "light_generator"} <= set(list_models(kind="generator"))


CLASSIFIERS = list_models(kind="classifier")


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize(("channels", "size"), [(1, 8), (1, 28), (3, 32)])
def test_every_classifier_forward_shape(name: str, channels: int, size: int) -> None:
    if name in ("resnet18", "resnet34", "wrn40_2") and size > 8:
        size = 16  # keep the big ones quick on CPU; they are size-agnostic (global pooling)
    model = create_model(name, num_classes=7, in_channels=channels, image_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models(kind="generator"))
@pytest.mark.parametrize(("channels", "size"), [(1, 8), (1, 28), (3, 32)])
def test_every_generator_output_shape(name: str, channels: int, size: int) -> None:
    g = create_generator(name, nz=16, out_channels=channels, image_size=size)
    x = g(torch.randn(4, 16))
    assert x.shape == (4, channels, size, size)
    x.sum().backward()
    assert all(p.grad is not None for p in g.parameters() if p.requires_grad)


def test_bn_and_nobn_variants_differ() -> None:
    def has_bn(m: torch.nn.Module) -> bool:
        return any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())

    assert has_bn(create_model("lenet5")) and has_bn(create_model("lenet5_half"))
    assert not has_bn(create_model("lenet5_nobn")) and not has_bn(create_model("lenet5_half_nobn"))
    half = sum(p.numel() for p in create_model("lenet5_half").parameters())
    full = sum(p.numel() for p in create_model("lenet5").parameters())
    assert half < full / 3


def test_unknown_model_and_bad_argument() -> None:
    with pytest.raises(ConfigError, match="did you mean 'lenet5'"):
        create_model("lenet6")
    with pytest.raises(ConfigError, match="takes no option 'depth'"):
        create_model("lenet5", depth=3)
    with pytest.raises(ConfigError, match="is a generator"):
        create_model("dafl_generator")


def test_factory_string_builds_user_model() -> None:
    m = create_model("torch.nn:Flatten")  # a callable that ignores our keyword arguments
    assert isinstance(m, torch.nn.Flatten)
    with pytest.raises(dfkd.DfkdError, match="cannot import"):
        create_model("no_such_pkg.mod:make")
    with pytest.raises(dfkd.DfkdError, match="has no attribute"):
        create_model("torch.nn:NoSuchThing")


def test_model_registry_entries_have_docs() -> None:
    assert all(e.doc for e in MODELS.entries())
