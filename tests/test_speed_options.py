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


class _Block(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x)) + x


class _Chain(torch.nn.Module):
    """Blocks of different widths sharing one ``forward``, a graph break between them (as a
    taps hook makes), so that each block is compiled on its own."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(_Block(w) for w in widths)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for block, x in zip(self.blocks, xs):
            out.append(block(x))
            torch._dynamo.graph_break()
        return out


def _limit_hits(model: torch.nn.Module, caplog: pytest.LogCaptureFixture) -> int:
    xs = [torch.randn(2, w) for w in range(3, 13)]
    with caplog.at_level("WARNING"):
        for grad in (True, False):
            with torch.set_grad_enabled(grad):
                model(xs)
    return sum("recompile_limit" in r.getMessage() for r in caplog.records)


def test_a_compiled_run_compiles_every_block_of_a_shared_forward(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty versions of one block's forward (ten widths, two grad modes): torch's default
    limit of 8 leaves most to run uncompiled; ``speed_up`` lets them all compile."""
    from dfkd.config import SpeedConfig
    from dfkd.engine.speed import speed_up

    torch._dynamo.reset()
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 8)
    plain = _Chain(list(range(3, 13)))
    plain.compile(backend="eager")
    assert _limit_hits(plain, caplog) > 0
    torch._dynamo.reset()
    caplog.clear()
    fast = speed_up(_Chain(list(range(3, 13))), SpeedConfig(compile=True, compile_backend="eager",
                                                            channels_last=False))  # fmt: skip
    assert _limit_hits(fast, caplog) == 0
    torch._dynamo.reset()
