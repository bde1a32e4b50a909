"""A running average of the student's weights, deployed in its place (weight averaging)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models.heads import Headed
from ..sources.base import SourceEnv
from .base import Plugin, register_plugin


def ema_decay(updates: int, decay: float, warmup: bool = True) -> float:
    """The decay of the average's next update after ``updates`` earlier ones: ``decay``, or
    with ``warmup`` ``min(decay, (1 + n) / (10 + n))``, so a short run averages over about its
    last tenth instead of remembering its initial weights."""
    return min(decay, (1 + updates) / (10 + updates)) if warmup else decay


def ema_step(average: torch.Tensor, current: torch.Tensor, decay: float) -> torch.Tensor:
    """One update of an exponential moving average: ``decay · average + (1 − decay) ·
    current``."""
    return average * decay + current * (1.0 - decay)


@register_plugin("ema")
class StudentEMA(Plugin):
    """Keeps an exponential moving average of the student's weights, updated after every
    student step (floating-point buffers such as BatchNorm statistics averaged alike), and
    deploys it: evaluation, the saved student and every reported accuracy use the average.

    Args:
        decay: the longest memory of the average (per student step).
        warmup: start with a short memory that grows with the steps taken
            (:func:`ema_decay`); without it, an early average still holds the initial weights.
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True) -> None:
        super().__init__()
        if not 0 <= decay < 1:
            raise ConfigError(f"ema: decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("pending", torch.zeros((), dtype=torch.bool))
        self.average: nn.Module | None = None
        self._student: tuple[nn.Module, ...] = ()  # a tuple: not a sub-module, not checkpointed

    def setup(self, env: SourceEnv) -> None:
        self._student = (env.student,)
        self.average = copy.deepcopy(env.student).requires_grad_(False).eval()

    def observe(self, batch: Any) -> None:
        """A student step follows: fold in the weights the previous step left."""
        self._catch_up()
        self.pending.fill_(True)

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        self._catch_up()
        return {"decay": ema_decay(max(int(self.updates) - 1, 0), self.decay, self.warmup)}

    def deployed(self, model: nn.Module) -> nn.Module:
        assert self.average is not None, "ema: setup() runs before deployed()"
        (student,) = self._student
        if model is student:
            return self.average
        if isinstance(model, Headed) and model.student is student:
            return Headed(self.average, model.head)
        raise ConfigError("ema: list it before plug-ins that replace the student")

    @torch.no_grad()
    def _catch_up(self) -> None:
        if not bool(self.pending):
            return
        assert self.average is not None
        (student,) = self._student
        d = ema_decay(int(self.updates), self.decay, self.warmup)
        current = student.state_dict()
        for name, avg in self.average.state_dict().items():
            now = current[name]
            avg.copy_(ema_step(avg, now, d) if avg.is_floating_point() else now)
        self.updates += 1
        self.pending.fill_(False)
