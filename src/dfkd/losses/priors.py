"""Image priors for synthesis: total variation and the l2 prior, as pure functions."""

from __future__ import annotations

import torch


def total_variation(x: torch.Tensor, p: int = 2, reduction: str = "mean") -> torch.Tensor:
    """Total variation of a batch ``B×C×H×W`` over vertical, horizontal and both diagonal
    neighbour differences Δ (DeepInversion's four directions), summed over directions.

    ``reduction="mean"``: the mean of ``|Δ|^p`` (``p`` 1: anisotropic l1, 2: squared).
    ``reduction="norm"``: the Frobenius norm ``‖Δ‖₂`` of each direction over the whole batch (the
    TA-DFKD code's form, whose weights assume it; ``p`` is ignored)."""
    if p not in (1, 2):
        raise ValueError(f"total_variation: p must be 1 or 2, got {p}")
    if reduction not in ("mean", "norm"):
        raise ValueError(f"total_variation: reduction must be 'mean' or 'norm', got {reduction!r}")
    diffs = (
        x[:, :, 1:, :] - x[:, :, :-1, :],
        x[:, :, :, 1:] - x[:, :, :, :-1],
        x[:, :, 1:, 1:] - x[:, :, :-1, :-1],
        x[:, :, 1:, :-1] - x[:, :, :-1, 1:],
    )
    if reduction == "norm":
        return sum(torch.linalg.vector_norm(d) for d in diffs)  # type: ignore[return-value]
    return sum((d.abs() if p == 1 else d.pow(2)).mean() for d in diffs)  # type: ignore[return-value]


def l2_prior(x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``reduction="mean"``: the mean over the batch of each image's Euclidean norm
    (DeepInversion's ``l2`` term); ``"norm"``: the Frobenius norm of the whole batch (TA-DFKD)."""
    if reduction == "norm":
        return torch.linalg.vector_norm(x)
    if reduction != "mean":
        raise ValueError(f"l2_prior: reduction must be 'mean' or 'norm', got {reduction!r}")
    return x.flatten(1).norm(dim=1).mean()


def input_gradient_penalty(per_sample: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``‖∇ₓ yᵢ‖²`` for a per-sample scalar ``y`` computed from ``x``
    (seed 003's smoothness term). Differentiable: the graph is kept, so minimising it trains the
    source towards inputs where the model is smooth."""
    (grad,) = torch.autograd.grad(per_sample.sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()
