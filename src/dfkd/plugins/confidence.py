"""Confidence-weighted distillation: the adaptive distillation strategy of seed 000 (KD terms
weighted by how confident the teacher is on each sample)."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from ..sources.base import Batch
from .base import Plugin, register_plugin


def confidence_weights(
    teacher_logits: torch.Tensor, power: float = 1.0, normalize: bool = True
) -> torch.Tensor:
    """Per-sample weights ``max_c softmax(t)_c ** power``, rescaled to mean 1 when
    ``normalize`` (so the loss scale, and hence the learning rate, stays comparable)."""
    w = torch.softmax(teacher_logits.float(), dim=1).amax(dim=1).pow(power)
    return w / w.mean().clamp_min(1e-12) if normalize else w


def _mean(values: list[torch.Tensor]) -> float:
    """Mean of per-step device scalars, read back once."""
    return float(torch.stack(values).mean()) if values else 0.0


@register_plugin("confidence_weighting")
class ConfidenceWeighting(Plugin):
    """Weights every distillation term by the teacher's max-softmax confidence on the sample.

    Args:
        power: sharpness; 0 gives uniform weights, larger values favour confident samples more.
        normalize: rescale the weights of each batch to mean 1.
        min_confidence: drop samples below this confidence entirely (0 keeps all).
    """

    def __init__(self, power: float = 1.0, normalize: bool = True, min_confidence: float = 0.0):
        super().__init__()
        if power < 0 or not 0 <= min_confidence < 1:
            raise ConfigError(
                "confidence_weighting: power must be ≥ 0 and min_confidence in [0, 1)"
            )
        self.power, self.normalize, self.min_confidence = power, normalize, min_confidence
        self._kept: list[torch.Tensor] = []  # per step, on the device (no sync per step)
        self._mean_w: list[torch.Tensor] = []

    def select(self, batch: Batch) -> Batch:
        t = batch.teacher_logits
        assert t is not None
        if self.min_confidence > 0:
            keep = torch.softmax(t.float(), dim=1).amax(dim=1) >= self.min_confidence
            self._kept.append(keep.float().mean())
            batch = batch.subset(keep)
            t = batch.teacher_logits
            if len(batch) == 0:
                return batch
        self._mean_w.append(torch.softmax(t.float(), 1).amax(1).mean())
        return batch.weighted(confidence_weights(t, self.power, self.normalize))

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        out = {"teacher_confidence": _mean(self._mean_w)}
        if self._kept:
            out["kept_fraction"] = _mean(self._kept)
        self._kept.clear()
        self._mean_w.clear()
        return out
