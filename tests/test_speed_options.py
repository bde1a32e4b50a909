"""``speed.channels_last`` and ``speed.compile`` change how the networks run, not what they
compute (``compile_backend: eager`` here: the same arithmetic, so the same weights); where
``auto`` turns them, and bfloat16 (``fabric.precision: auto``), on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dfkd
from dfkd.engine.speed import bf16_matrix_units as machine_bf16_units  # before conftest's patch

SHORT = ["rounds=2", "kd_steps=3", "g_steps=2", "eval_every=2", "checkpoint_every=2"]


@pytest.mark.parametrize("method", ["dfq", "nayer"])
def test_compiled_networks_train_to_the_same_weights(method: str, teacher_dir: Path) -> None:
    plain = dfkd.distill(teacher_dir, "lenet5_half", method, "digits", overrides=SHORT,
                         progress=False)  # fmt: skip
    compiled = dfkd.distill(teacher_dir, "lenet5_half", method, "digits", progress=False,
                            overrides=[*SHORT, "speed.compile=true",
                                       "speed.compile_backend=eager"])  # fmt: skip
    a, b = plain["student"].state_dict(), compiled["student"].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert getattr(compiled["student"], "_compiled_call_impl", None) is not None


def test_channels_last_students_train(teacher_dir: Path) -> None:
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", progress=False,
                     overrides=[*SHORT, "speed.channels_last=true"])  # fmt: skip
    conv = next(p for p in m["student"].parameters() if p.dim() == 4)
    assert m["completed"] and conv.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(p).all() for p in m["student"].parameters())


def test_multiply_adds_against_a_hand_count() -> None:
    from dfkd.models.cost import multiply_adds

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),  # 4 maps of 8×8, 1·3·3 each: 2304
        torch.nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2),  # 8 of 4×4, 2·3·3: 2304
        torch.nn.BatchNorm2d(8),
        torch.nn.Flatten(),
        torch.nn.Linear(128, 10),  # 1280
    ).train()
    assert multiply_adds(net, (1, 8, 8)) == 2304 + 2304 + 1280
    assert net.training  # its mode is left as it was


def test_auto_speed_compiles_only_where_it_was_measured_to_pay() -> None:
    from dfkd.engine.speed import AUTO_MIN_MACS, auto_speed

    big, long = 2 * AUTO_MIN_MACS, 600.0
    assert auto_speed(big, long, "cpu", compiler=True)[0]
    assert not auto_speed(big // 4, long, "cpu", True)[0]  # a cheap teacher: no gain
    assert not auto_speed(big, 60.0, "cpu", True)[0]  # a short run: compilation not repaid
    assert not auto_speed(big, None, "cpu", True)[0]  # no budget: length unknown
    assert not auto_speed(big, long, "cuda", True)[0]  # not measured there
    on, why = auto_speed(big, long, "cpu", compiler=False)
    assert not on and "C++ compiler" in why


def test_a_run_says_how_its_networks_ran(teacher_dir: Path) -> None:
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", overrides=SHORT,
                     progress=False)  # fmt: skip
    assert m["speed"].startswith("compile, channels_last off:") and "multiply-adds" in m["speed"]
    plain = ["speed.compile=false", "speed.channels_last=false"]
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", progress=False,
                     overrides=[*SHORT, *plain])  # fmt: skip
    assert m["speed"] == "as configured"
    with pytest.raises(dfkd.ConfigError, match=r"speed\.compile' must be true, false or auto"):
        dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", progress=False,
                     overrides=[*SHORT, "speed.compile=fast"])  # fmt: skip


def test_bf16_matrix_units_need_both_probes_and_tolerate_a_torch_without_them(monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert machine_bf16_units() is True
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert machine_bf16_units() is False  # AVX-512 BF16 without AMX tiles: not enough
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert machine_bf16_units() is False  # a PyTorch that cannot tell


def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_matrix_units() -> None:
    from dfkd.engine.speed import auto_precision

    assert auto_precision("cpu", bf16_units=True)[0] == "bf16-mixed"
    precision, why = auto_precision("cpu", bf16_units=False)
    assert precision == "32-true" and "AMX" in why
    assert auto_precision("cuda", bf16_units=True)[0] == "32-true"  # measured on CPUs only


def test_settled_precision_follows_the_device_and_keeps_a_named_one(monkeypatch) -> None:
    from dfkd.config import FabricConfig
    from dfkd.engine import speed

    monkeypatch.setattr(speed, "bf16_matrix_units", lambda: True)
    cpu = FabricConfig(accelerator="cpu")
    assert speed.settle_precision(cpu)[0].precision == "bf16-mixed"
    named = FabricConfig(accelerator="cpu", precision="32-true")
    assert speed.settle_precision(named) == (named, "32-true: as configured")
    monkeypatch.setattr(speed, "bf16_matrix_units", lambda: False)
    assert speed.settle_precision(cpu)[0].precision == "32-true"
    assert cpu.precision == "auto"  # the config itself is left as it was


def test_a_run_says_which_precision_it_computed_in(teacher_dir: Path, monkeypatch) -> None:
    from dfkd.engine import speed

    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", overrides=SHORT,
                     progress=False)  # fmt: skip
    assert m["precision"] == "32-true: this CPU has no bfloat16 matrix units (AMX)"
    monkeypatch.setattr(speed, "bf16_matrix_units", lambda: True)
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", overrides=SHORT,
                     progress=False)  # fmt: skip
    assert m["precision"].startswith("bf16-mixed: ") and m["completed"]
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", progress=False,
                     overrides=[*SHORT, "fabric.precision=32-true"])  # fmt: skip
    assert m["precision"] == "32-true: as configured"


def test_a_budgeted_run_settles_speed_from_the_budget_it_was_given(
    teacher_dir: Path, monkeypatch
) -> None:
    """Sizing a run leaves its config without a budget; ``auto`` is still settled from the one
    it was given, and the student runs as the teacher does."""
    from dfkd.engine import speed

    monkeypatch.setattr(speed, "AUTO_MIN_MACS", 0)
    monkeypatch.setattr(speed, "AUTO_MIN_SECONDS", 1.0)
    monkeypatch.setattr(speed.shutil, "which", lambda _: "/usr/bin/c++")
    m = dfkd.distill(teacher_dir, "lenet5_half", "dfq", "digits", time_budget="8s",
                     overrides=["speed.compile_backend=eager"], progress=False)  # fmt: skip
    assert m["speed"].startswith("compile, channels_last on:"), m["speed"]
    assert getattr(m["student"], "_compiled_call_impl", None) is not None
