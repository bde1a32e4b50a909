"""Image priors for synthesis: total variation and the l2 prior, as pure functions."""

from __future__ import annotations

import torch


def total_variation(x: torch.Tensor, p: int = 2) -> torch.Tensor:
    """Total variation of a batch ``B×C×H×W``: the mean over pixels of the ``|Δ|^p`` of vertical,
    horizontal and both diagonal neighbour differences (DeepInversion's four directions), summed
    over directions and averaged over the batch. ``p`` is 1 (anisotropic l1) or 2 (squared)."""
    if p not in (1, 2):
        raise ValueError(f"total_variation: p must be 1 or 2, got {p}")
    diffs = (
        x[:, :, 1:, :] - x[:, :, :-1, :],
        x[:, :, :, 1:] - x[:, :, :, :-1],
        x[:, :, 1:, 1:] - x[:, :, :-1, :-1],
        x[:, :, 1:, :-1] - x[:, :, :-1, 1:],
    )
    return sum((d.abs() if p == 1 else d.pow(2)).mean() for d in diffs)  # type: ignore[return-value]


def l2_prior(x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of each image's Euclidean norm (DeepInversion's ``l2`` term)."""
    return x.flatten(1).norm(dim=1).mean()


def input_gradient_penalty(per_sample: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``‖∇ₓ yᵢ‖²`` for a per-sample scalar ``y`` computed from ``x``
    (seed 003's smoothness term). Differentiable: the graph is kept, so minimising it trains the
    source towards inputs where the model is smooth."""
    (grad,) = torch.autograd.grad(per_sample.sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()
