"""Losses that make a teacher non-transferable (NTL, Wang et al. ICLR 2022; CUTI-domain, CVPR
2023), as pure functions. Read from the authors' code (``conditionWang/NTL``,
``tmllab/NTLBench``); see ``docs/methods.md`` for the quirks kept as options."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_mmd(
    x: torch.Tensor, y: torch.Tensor, kernels: int = 5, kernel_mul: float = 2.0
) -> torch.Tensor:
    """Multi-kernel Gaussian MMD between two equally sized batches of features (flattened).

    The bandwidths are ``b · kernel_mul**i`` for ``i < kernels``, with the base ``b`` the mean
    pairwise squared distance of the pooled samples divided by ``kernel_mul**(kernels // 2)``;
    the estimate is ``mean(K_xx + K_yy − K_xy − K_yx)`` (the biased estimator of the NTL code).
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"gaussian_mmd needs equal batch sizes, got {x.shape[0]} and {y.shape[0]}")
    n = x.shape[0]
    z = torch.cat([x.reshape(n, -1), y.reshape(n, -1)]).float()
    d2 = torch.cdist(z, z).pow(2)
    m = z.shape[0]
    base = d2.detach().sum() / (m * m - m)
    base = base / kernel_mul ** (kernels // 2)
    k = sum(torch.exp(-d2 / (base * kernel_mul**i).clamp_min(1e-12)) for i in range(kernels))
    assert isinstance(k, torch.Tensor)
    return (k[:n, :n] + k[n:, n:] - k[:n, n:] - k[n:, :n]).mean()


def kl_to_targets(
    logits: torch.Tensor, targets: torch.Tensor, reduction: str = "elementwise"
) -> torch.Tensor:
    """``KL(targets ‖ softmax(logits))`` for (one-hot or soft) target rows.

    ``reduction="elementwise"`` averages over batch *and* classes, as ``nn.KLDivLoss()`` with its
    default reduction does in the NTL code (the loss is the cross-entropy divided by the number of
    classes for one-hot targets); ``"batchmean"`` averages over the batch only.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    t = targets.float()
    per = torch.where(t > 0, t * (t.clamp_min(1e-12).log() - log_p), torch.zeros_like(t))
    if reduction == "elementwise":
        return per.mean()
    if reduction == "batchmean":
        return per.sum() / logits.shape[0]
    raise ValueError(f"reduction must be 'elementwise' or 'batchmean', got {reduction!r}")


def ntl_loss(
    logits_id: torch.Tensor,
    targets_id: torch.Tensor,
    logits_ood: torch.Tensor,
    targets_ood: torch.Tensor,
    mmd: torch.Tensor | None = None,
    alpha: float = 0.1,
    beta: float = 0.1,
    reduction: str = "elementwise",
) -> torch.Tensor:
    """Target-specified NTL: ``KL_id − min(1, α·KL_ood) · min(1, β·MMD)``; without ``mmd``
    (CUTI-domain) the last factor is 1."""
    l_id = kl_to_targets(logits_id, targets_id, reduction)
    l_ood = torch.clamp(alpha * kl_to_targets(logits_ood, targets_ood, reduction), max=1.0)
    if mmd is None:
        return l_id - l_ood
    return l_id - l_ood * torch.clamp(beta * mmd, max=1.0)


def style_mix(
    source: torch.Tensor, target: torch.Tensor, gen: torch.Generator | None = None
) -> torch.Tensor:
    """CUTI's channel-statistics mixing: ``target · σ(A·std_s) + σ(B·mean_s)`` with ``A``, ``B``
    random 1×1 mixings of the source's per-sample channel statistics, drawn afresh per call (as
    in the NTLBench port, where the 1×1 convolutions are never trained)."""
    c = source.shape[1]
    dims = tuple(range(2, source.ndim))
    mean = source.mean(dim=dims) if dims else source
    std = source.std(dim=dims) if dims and source[0, 0].numel() > 1 else torch.ones_like(mean)
    bound = 1.0 / c**0.5  # the default init range of a 1×1 convolution with c inputs
    w = (torch.rand(2, c, c, generator=gen) * 2 - 1).mul(bound).to(source)
    b = (torch.rand(2, c, generator=gen) * 2 - 1).mul(bound).to(source)
    scale = torch.sigmoid(std @ w[0].T + b[0])
    shift = torch.sigmoid(mean @ w[1].T + b[1])
    shape = (*scale.shape, *([1] * len(dims)))
    return target * scale.view(shape) + shift.view(shape)
