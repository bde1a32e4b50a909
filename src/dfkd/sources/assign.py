"""Target classes for a synthetic batch: drawn at random, or assigned so that every class gets
its share of the batch."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

#: how a source gives a batch its target classes
TARGET_RULES = ("random", "balanced")


def balanced_targets(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The target class of each row of ``logits`` (``B×C``) that maximises the batch's summed
    log-probability ``Σᵢ log softmax(logits)[i, tᵢ]`` when no class is the target of more than
    ``⌈B / C⌉`` rows: each image is pushed to the class it is nearest to, as long as that class
    is not already full, so that every class is some images' target (for ``B ≥ C``)."""
    b = logits.shape[0]
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        shape = tuple(logits.shape)
        raise ValueError(f"balanced_targets: logits must be B×{num_classes}, got {shape}")
    share = -(-b // num_classes)
    cost = -torch.log_softmax(logits.detach().float(), dim=1).cpu().numpy()
    slots = np.repeat(cost, share, axis=1)  # column c·share + j: the j-th place of class c
    rows, cols = linear_sum_assignment(slots)
    targets = np.empty(b, dtype=np.int64)
    targets[rows] = cols // share
    return torch.from_numpy(targets).to(logits.device)
