"""What a network costs per image: the multiply-adds of its convolutions and linear layers."""

from __future__ import annotations

import math

import torch
from torch import nn


def multiply_adds(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass of ``model`` on one image of ``input_shape`` (``C×H×W``)
    in its convolutions and linear layers (what dominates a classifier's cost; normalisation,
    activations and pooling are not counted). The model's state is unchanged."""
    total = 0

    def count(m: nn.Module, _: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        per_output = m.in_features if isinstance(m, nn.Linear) else (
            m.in_channels // m.groups * math.prod(m.kernel_size))  # fmt: skip
        total += out[0].numel() * per_output

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    hooks = [m.register_forward_hook(count) for m in layers]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total
