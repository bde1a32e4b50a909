"""Class-balanced distillation: every class the teacher sees in a distillation batch carries the
same total weight, so classes a source under-draws still teach the student."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from ..sources.base import Batch
from .base import Plugin, register_plugin


def class_balance_weights(teacher_logits: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Per-sample weights ``n_c ** -power`` for the teacher's predicted class ``c`` (``n_c``: its
    count in the batch), rescaled to mean 1; ``power`` 1 gives every present class the same
    total weight, 0 uniform weights."""
    predicted = teacher_logits.argmax(dim=1)
    counts = torch.bincount(predicted, minlength=teacher_logits.shape[1]).to(teacher_logits)
    w = counts[predicted].float().pow(-power)
    return w / w.mean()


@register_plugin("class_balance")
class ClassBalance(Plugin):
    """Weights every distillation term so each teacher-predicted class of the batch counts the
    same (``power`` 1) or in between (0 < ``power`` < 1).

    Args:
        power: how fully to balance; 0 leaves the batch as it is.
    """

    def __init__(self, power: float = 1.0):
        super().__init__()
        if not 0 <= power <= 1:
            raise ConfigError(f"class_balance: power must be in [0, 1], got {power}")
        self.power = power
        self._max_w: list[torch.Tensor] = []

    def select(self, batch: Batch) -> Batch:
        assert batch.teacher_logits is not None
        w = class_balance_weights(batch.teacher_logits, self.power)
        self._max_w.append(w.max())
        return batch.weighted(w)

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        out = {"max_class_weight": float(torch.stack(self._max_w).max())} if self._max_w else {}
        self._max_w.clear()
        return out
