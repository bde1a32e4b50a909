"""The student's optimiser and its learning-rate schedule (a pure function of the step)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..config import RunConfig
from ..errors import ConfigError, did_you_mean
from ..schedules import cosine_decay, progress, set_lr

SCHEDULES = ("constant", "cosine")


def make_optimizer(cfg: RunConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The student's optimiser from ``cfg.optimizer``."""
    o = cfg.optimizer
    builders: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "sgd": lambda: torch.optim.SGD(
            params,
            lr=o.lr,
            momentum=o.momentum,
            nesterov=o.nesterov and o.momentum > 0,
            weight_decay=o.weight_decay,
        ),
        "adam": lambda: torch.optim.Adam(
            params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
        ),
        "adamw": lambda: torch.optim.AdamW(
            params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
        ),
    }
    check_optimizer(cfg)
    return builders[o.name]()


OPTIMIZERS = ("sgd", "adam", "adamw")


def check_optimizer(cfg: RunConfig) -> None:
    """Refuse an unknown optimiser or schedule name before any work."""
    o = cfg.optimizer
    if o.name not in OPTIMIZERS:
        raise ConfigError(
            f"unknown optimizer '{o.name}'{did_you_mean(o.name, OPTIMIZERS)} "
            f"(choose from {sorted(OPTIMIZERS)})"
        )
    if o.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule '{o.schedule}'{did_you_mean(o.schedule, SCHEDULES)}")


def lr_at(step: int, total: int, cfg: RunConfig, replans: Sequence[tuple[int, int]] = ()) -> float:
    """Learning rate of student step ``step`` (0-based) out of ``total``: linear warm-up, then
    constant or cosine decay to ``min_lr``. ``replans``: ``(at, total_before)`` for each time
    the run was re-planned (after ``at`` steps of a ``total_before``-step plan; the decay stays
    continuous: :func:`dfkd.schedules.progress`). Pure, so resuming needs no scheduler state."""
    o = cfg.optimizer
    if o.warmup_steps and step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return o.lr
    ws = o.warmup_steps
    done, span = step - ws, max(1, total - ws)
    decaying = [(at - ws, max(1, before - ws)) for at, before in replans if at > ws]
    if not decaying:  # no re-plan, or only before the decay began
        return cosine_decay(o.lr, done / span, o.min_lr)
    return cosine_decay(o.lr, progress(done, span, decaying), o.min_lr)


__all__ = ["OPTIMIZERS", "SCHEDULES", "lr_at", "make_optimizer", "set_lr"]
