"""How the teacher and the student run (memory format, compilation, precision): the run's
``speed`` config and ``fabric.precision``, with ``auto`` settled from what was measured on CPUs
(``benchmarks/results/speed_options.md``; benchmarks/README.md, "bfloat16 on a CPU")."""

from __future__ import annotations

import dataclasses
import os
import shutil

import torch
from torch import nn

from ..config import FabricConfig, SpeedConfig, parse_duration
from ..models.cost import multiply_adds

#: ``auto`` compiles a teacher of at least this many multiply-adds per image (the zoo's ResNet
#: 9.3 M and VGG 21.9 M gained 8-36 % a round compiled in channels-last; LeNet-5, 0.4 M, lost)
AUTO_MIN_MACS = 8_000_000
#: ... in a run budgeted at least this long (compilation costs 25-45 s once)
AUTO_MIN_SECONDS = 300.0
#: compiled versions of one function a compiled run allows: blocks that share a ``forward`` (a
#: ResNet's residual blocks) get one per block shape, grad mode and set of taps, and past torch's
#: default of 8 the rest of the network runs uncompiled (the zoo's ResNet reached it each run)
RECOMPILE_LIMIT = 64


def auto_speed(macs: int, budget_s: float | None, device: str, compiler: bool) -> tuple[bool, str]:
    """Whether ``auto`` compiles and goes channels-last, and why, in one line."""
    if device != "cpu":
        return False, f"off: measured on CPUs only (this run: {device})"
    if macs < AUTO_MIN_MACS:
        return False, f"off: the teacher's {macs / 1e6:.1f} M multiply-adds per image compile " \
            f"to no gain (below {AUTO_MIN_MACS / 1e6:.0f} M)"  # fmt: skip
    if budget_s is None or budget_s < AUTO_MIN_SECONDS:
        return False, "off: compiling costs 25-45 s, repaid in runs budgeted at 5 minutes or more"
    if not compiler:
        return False, "off: no C++ compiler found (inductor needs one on CPUs)"
    return True, f"on: a teacher of {macs / 1e6:.1f} M multiply-adds per image in a " \
        f"{budget_s:.0f}-s run (+8-36 % a round measured)"  # fmt: skip


def settle_speed(
    speed: SpeedConfig, teacher: nn.Module, input_shape: tuple[int, ...], device: str,
    time_budget: str | float | None,
) -> tuple[SpeedConfig, str]:  # fmt: skip
    """``speed`` with every ``auto`` settled for this teacher, device and budget, and why."""
    autos = [k for k in ("compile", "channels_last") if getattr(speed, k) == "auto"]
    if not autos:
        return speed, "as configured"
    budget = None if time_budget is None else parse_duration(time_budget)
    compiler = shutil.which(os.environ.get("CXX", "c++")) is not None
    macs = multiply_adds(teacher, input_shape) if device == "cpu" else 0
    on, why = auto_speed(macs, budget, device, compiler)
    return dataclasses.replace(speed, **dict.fromkeys(autos, on)), f"{', '.join(autos)} {why}"


def speed_up(model: nn.Module, speed: SpeedConfig) -> nn.Module:
    """``model`` itself, in channels-last memory format and/or compiled in place (its
    parameters, state-dict keys and hooks unchanged)."""
    if speed.channels_last is True:
        model.to(memory_format=torch.channels_last)
    if speed.compile is True:
        allow_recompiles(RECOMPILE_LIMIT)
        model.compile(backend=speed.compile_backend, mode=speed.compile_mode)
    return model


def allow_recompiles(limit: int) -> None:
    """Let torch compile each function up to ``limit`` times (never lowering its limit)."""
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, limit)


def bf16_matrix_units() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX with AVX-512 BF16),
    as PyTorch's own dispatch sees it; ``False`` where this PyTorch cannot tell."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return all(bool(getattr(torch.cpu, p, lambda: False)()) for p in probes)


def auto_precision(device: str, bf16_units: bool) -> tuple[str, str]:
    """The precision ``auto`` runs in, and why, in one line."""
    if device != "cpu":
        return "32-true", f"32-true: bfloat16 measured on CPUs only (this run: {device})"
    if not bf16_units:
        return "32-true", "32-true: this CPU has no bfloat16 matrix units (AMX)"
    return "bf16-mixed", "bf16-mixed: this CPU multiplies bfloat16 in hardware (AMX; " \
        "the zoo's VGG ran 2.4x the rounds)"  # fmt: skip


def settle_precision(fabric: FabricConfig) -> tuple[FabricConfig, str]:
    """``fabric`` with ``precision: auto`` settled for the device it will run on, and why."""
    if fabric.precision != "auto":
        return fabric, f"{fabric.precision}: as configured"
    precision, why = auto_precision(fabric_device(fabric.accelerator), bf16_matrix_units())
    return dataclasses.replace(fabric, precision=precision), why


def fabric_device(accelerator: str) -> str:
    """The device type Fabric will pick for ``accelerator`` (``auto``: a GPU if there is one)."""
    if accelerator != "auto":
        return "cuda" if accelerator == "gpu" else accelerator
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"
