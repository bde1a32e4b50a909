"""Distillation criteria between student and teacher logits, as pure functions.

Every function returns a scalar: the (optionally weighted) mean over the batch of a per-sample
loss. With ``weight`` (shape ``B``), the mean is ``Σ wᵢ lᵢ / Σ wᵢ``; an all-zero weight gives 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reduce_weighted(per_sample: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``per_sample`` (shape ``B``), weighted by ``weight`` when given."""
    if weight is None:
        return per_sample.mean()
    weight = weight.to(per_sample.dtype)
    return (per_sample * weight).sum() / weight.sum().clamp_min(1e-12)


def standardize_logits(logits: torch.Tensor, std: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """Each sample's logits minus their mean, over their standard deviation (population), times
    ``std``: what a term compares when it must not depend on a network's logit scale or
    offset."""
    mean = logits.mean(dim=1, keepdim=True)
    spread = logits.std(dim=1, keepdim=True, unbiased=False)
    return std * (logits - mean) / (spread + eps)


def rescale_logits(
    logits: torch.Tensor, std: float, only_up: bool = False, eps: float = 1e-6
) -> torch.Tensor:
    """The batch's logits times one factor (no gradient through it) that makes the mean, over
    samples, of each sample's logit standard deviation (population) ``std``: a batch-wide
    temperature that keeps how confident each sample is relative to the others. ``only_up``:
    a batch whose mean is already ``std`` or more is left as it is."""
    spread = logits.detach().std(dim=1, unbiased=False).mean()
    factor = std / (spread + eps)
    return logits * factor.clamp_min(1.0) if only_up else logits * factor


def kl_div(
    student: torch.Tensor,
    teacher: torch.Tensor,
    T: float = 1.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hinton KD: ``T² · KL(softmax(t/T) ‖ softmax(s/T))`` per sample, averaged."""
    log_p_s = F.log_softmax(student / T, dim=1)
    log_p_t = F.log_softmax(teacher / T, dim=1)
    per = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    return reduce_weighted(per, weight) * (T * T)


def l1_logits(
    student: torch.Tensor, teacher: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """DFAD's criterion: mean absolute difference of logits (mean over classes, then batch)."""
    return reduce_weighted((student - teacher).abs().mean(dim=1), weight)


def js_div(
    student: torch.Tensor,
    teacher: torch.Tensor,
    T: float = 1.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Jensen–Shannon divergence between ``softmax(s/T)`` and ``softmax(t/T)`` (natural log)."""
    p_s = F.softmax(student / T, dim=1)
    p_t = F.softmax(teacher / T, dim=1)
    m = 0.5 * (p_s + p_t)
    log_m = m.clamp_min(1e-12).log()
    kl_sm = (p_s * (p_s.clamp_min(1e-12).log() - log_m)).sum(dim=1)
    kl_tm = (p_t * (p_t.clamp_min(1e-12).log() - log_m)).sum(dim=1)
    return reduce_weighted(0.5 * (kl_sm + kl_tm), weight)


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of ``logits`` against integer ``labels``."""
    return reduce_weighted(F.cross_entropy(logits, labels, reduction="none"), weight)
