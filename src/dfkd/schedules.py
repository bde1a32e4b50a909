"""Learning-rate schedules as pure functions of progress (resuming needs no scheduler state)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def cosine_decay(base: float, progress: float, floor: float = 0.0) -> float:
    """``floor + (base − floor)·½(1 + cos(π·p))`` with ``p = progress`` clipped to ``[0, 1]``."""
    p = min(1.0, max(0.0, progress))
    return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * p))


def progress(done: float, total: float, replans: Sequence[tuple[float, float]] = ()) -> float:
    """The share of a schedule over ``total`` units that ``done`` units have run.

    ``replans``: ``(at, total_before)`` for each time the schedule was re-planned, in order:
    it spanned ``total_before`` units until ``at``. The share left at each re-plan is spread
    over the units then left, so the share is continuous and reaches 1 at the last plan's end.
    """
    if not replans:
        return done / total
    share, start = 0.0, 0.0
    for at, before in replans:
        if done <= at:
            return share + (1 - share) * (done - start) / (before - start)
        share, start = share + (1 - share) * (at - start) / (before - start), at
    return share + (1 - share) * (done - start) / (total - start)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for g in optimizer.param_groups:
        g["lr"] = lr
