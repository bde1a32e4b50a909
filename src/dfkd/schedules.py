"""Learning-rate schedules as pure functions of progress (resuming needs no scheduler state)."""

from __future__ import annotations

import math

import torch


def cosine_decay(base: float, progress: float, floor: float = 0.0) -> float:
    """``floor + (base − floor)·½(1 + cos(π·p))`` with ``p = progress`` clipped to ``[0, 1]``."""
    p = min(1.0, max(0.0, progress))
    return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * p))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for g in optimizer.param_groups:
        g["lr"] = lr
