"""Evaluation metrics: accuracy, teacher–student agreement and last-k stability."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1000, device: torch.device | None = None
) -> torch.Tensor:
    """Logits of ``model`` (put in eval mode, restored afterwards) on ``x``, on the CPU."""
    was_training = model.training
    model.eval()
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    outs = [
        model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)
    ]
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in ``[0, 1]``."""
    if labels.numel() == 0:
        return float("nan")
    return float((logits.argmax(1) == labels).float().mean())


def agreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    """Share of samples where student and teacher top-1 predictions agree."""
    return float((student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean())


def last_k_mean(values: Sequence[float], k: int = 5) -> float:
    """Mean of the last ``k`` values (all of them if fewer)."""
    tail = list(values)[-k:]
    return float(sum(tail) / len(tail)) if tail else float("nan")
