"""Batch-normalisation statistics matching (DeepInversion, DFQ, statistical feature matching)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def bn_stat_distance(
    mean: torch.Tensor,
    var: torch.Tensor,
    ref_mean: torch.Tensor,
    ref_var: torch.Tensor,
    kind: str = "l2",
    eps: float = 1e-5,
) -> torch.Tensor:
    """Distance between a batch's channel statistics and reference (running) statistics.

    ``kind="l2"``: ``‖μ − μ_ref‖₂ + ‖σ² − σ²_ref‖₂`` (DeepInversion, seed 003's BN term);
    ``kind="kl"``: mean over channels of ``KL(N(μ, σ²) ‖ N(μ_ref, σ²_ref))`` (DFQ's form).
    """
    if kind == "l2":
        return torch.linalg.vector_norm(mean - ref_mean) + torch.linalg.vector_norm(var - ref_var)
    if kind == "kl":
        v, rv = var + eps, ref_var + eps
        kl = 0.5 * (torch.log(rv / v) + (v + (mean - ref_mean) ** 2) / rv - 1)
        return kl.mean()
    raise ValueError(f"bn_stat_distance: kind must be 'l2' or 'kl', got '{kind}'")


def bn_stat_loss(
    stats: Sequence[tuple[torch.Tensor, torch.Tensor]],
    refs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    first_multiplier: float = 1.0,
    kind: str = "l2",
) -> torch.Tensor:
    """Sum over layers of :func:`bn_stat_distance`, the first layer weighted by
    ``first_multiplier`` (DeepInversion uses 10). A sum, as every public implementation: the
    mean over layers helped on none of four zoo teachers (docs/methods.md, "What the synthesis
    makes, measured")."""
    if len(stats) != len(refs) or not stats:
        raise ValueError(f"bn_stat_loss: {len(stats)} batch statistics for {len(refs)} references")
    total = torch.zeros((), device=stats[0][0].device)
    for i, ((m, v), (rm, rv)) in enumerate(zip(stats, refs)):
        w = first_multiplier if i == 0 else 1.0
        total = total + w * bn_stat_distance(m, v, rm, rv, kind)
    return total


def blend_stats(
    stats: Sequence[tuple[torch.Tensor, torch.Tensor]],
    memory: Sequence[tuple[torch.Tensor, torch.Tensor]] | None,
    momentum: float,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's batch ``(mean, var)`` blended with the run's memory of earlier batches,
    ``(1 − momentum)·batch + momentum·memory`` (the batch as it is without a memory), so that
    a matching term asks a batch to move the statistics of everything synthesised so far
    toward the references, not to match them alone (Fast-DFKD's and NAYER's ``bn_mmt``)."""
    if not memory or momentum == 0.0:
        return list(stats)
    if len(memory) != len(stats):
        raise ValueError(f"blend_stats: {len(stats)} batch statistics for {len(memory)} in memory")
    m = momentum
    return [((1 - m) * mu + m * hm, (1 - m) * v + m * hv)
            for (mu, v), (hm, hv) in zip(stats, memory)]  # fmt: skip


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of ``B×C×…`` activations (what BatchNorm normalises
    with in training mode), in float32 also for half-precision activations (autocast)."""
    x = x.float()
    dims = [0, *range(2, x.ndim)]
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False)
    return mean, var
