"""Evaluation metrics: accuracy, teacher–student agreement, last-k stability, and the class
coverage and balance of what a student was distilled on."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

#: a class is covered when it has at least this share of a fair (uniform) share
COVERAGE_FLOOR = 0.25


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


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Top-1 accuracy on the samples of each class (NaN for a class without samples)."""
    right = (logits.argmax(1) == labels).double()
    counts = torch.bincount(labels, minlength=num_classes).double()
    hits = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, right)
    return (hits / counts).tolist()


def agreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    """Share of samples where student and teacher top-1 predictions agree."""
    return float((student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean())


def last_k_mean(values: Sequence[float], k: int = 5) -> float:
    """Mean of the last ``k`` values (all of them if fewer)."""
    tail = list(values)[-k:]
    return float(sum(tail) / len(tail)) if tail else float("nan")


def class_coverage(shares: Sequence[float], floor: float = COVERAGE_FLOOR) -> list[int]:
    """The classes whose share is below ``floor`` of a fair share (the uncovered ones)."""
    fair = 1.0 / len(shares)
    return [c for c, p in enumerate(shares) if p < floor * fair]


def class_balance(shares: Sequence[float]) -> float:
    """Normalised entropy of the class shares: 1 = uniform, 0 = a single class."""
    if len(shares) < 2:
        return 1.0
    h = -sum(p * math.log(p) for p in shares if p > 0)
    return h / math.log(len(shares))
