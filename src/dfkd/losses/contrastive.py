"""Instance discrimination between two views of synthetic images (CMI), as a pure function."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def instance_contrastive_loss(
    local: torch.Tensor, global_: torch.Tensor, n_current: int, T: float = 0.2
) -> torch.Tensor:
    """InfoNCE of CMI: row ``i`` of ``local`` (projected, unit-norm features of local views)
    must pick row ``i`` of ``global_`` (of global views; no gradient) among all rows, with
    logits ``local · globalᵀ / T``. Rows ``[0, n_current)`` are this batch, the rest come from
    the memory of earlier batches; the loss is the mean over the batch's rows plus, when there
    are memory rows, the mean over those."""
    logits = local @ global_.detach().T / T
    ce = F.cross_entropy(logits, torch.arange(len(local), device=local.device), reduction="none")
    if len(local) > n_current:
        return ce[:n_current].mean() + ce[n_current:].mean()
    return ce.mean()
