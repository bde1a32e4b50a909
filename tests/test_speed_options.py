"""``speed.channels_last`` and ``speed.compile`` change how the networks run, not what they
compute (``compile_backend: eager`` here: the same arithmetic, so the same weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dfkd

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
