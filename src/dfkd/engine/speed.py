"""How the teacher and the student run (memory format, compilation): the run's ``speed`` config,
with ``auto`` settled from what was measured on CPUs (``benchmarks/results/speed_options.md``)."""

from __future__ import annotations

import dataclasses
import os
import shutil

import torch
from torch import nn

from ..config import SpeedConfig, parse_duration
from ..models.cost import multiply_adds

#: ``auto`` compiles a teacher of at least this many multiply-adds per image (the zoo's ResNet
#: 9.3 M and VGG 21.9 M gained 8-36 % a round compiled in channels-last; LeNet-5, 0.4 M, lost)
AUTO_MIN_MACS = 8_000_000
#: ... in a run budgeted at least this long (compilation costs 25-45 s once)
AUTO_MIN_SECONDS = 300.0


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
        model.compile(backend=speed.compile_backend, mode=speed.compile_mode)
    return model
