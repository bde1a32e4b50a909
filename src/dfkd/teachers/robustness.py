"""Adversarial robustness probes of a (frozen) classifier on individual inputs — the signal
ATEsc uses to tell out-of-distribution-like synthetic samples (robust under a non-transferable
teacher) from in-distribution-like ones (fragile)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PGDProbe:
    """Untargeted L∞ PGD against the model's own prediction.

    Attributes:
        eps, step: radius and step size in *pixel* units (``[0, 1]`` images); they are divided
            by the per-channel normalisation std to act on normalised inputs.
        iters: number of steps.
        random_start: start from a uniform point in the ball (seeded by the caller's RNG).
    """

    eps: float = 8 / 255
    step: float = 2 / 255
    iters: int = 5
    random_start: bool = False

    def attack(
        self,
        model: nn.Module,
        x: torch.Tensor,
        std: torch.Tensor,
        low: torch.Tensor,
        high: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_adv, logits on x, logits on x_adv)``; ``labels`` default to the model's argmax on
        ``x``. ``std``, ``low`` and ``high`` are ``1×C×1×1`` (normalisation std and the
        normalised values of pixels 0 and 1)."""
        std, low, high = (t.to(x.device, x.dtype) for t in (std, low, high))
        eps, step = self.eps / std, self.step / std
        x = x.detach()
        with torch.no_grad():
            clean = model(x)
        y = clean.argmax(1) if labels is None else labels
        adv = x.clone()
        if self.random_start:
            adv = adv + (torch.rand_like(x) * 2 - 1) * eps
            adv = torch.max(torch.min(adv, high), low)
        for _ in range(self.iters):
            adv.requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(model(adv), y)
                (grad,) = torch.autograd.grad(loss, adv)
            adv = adv.detach() + step * grad.sign()
            adv = torch.max(torch.min(adv, x + eps), x - eps)
            adv = torch.max(torch.min(adv, high), low)
        with torch.no_grad():
            out = model(adv)
        return adv.detach(), clean, out


def prediction_kept(clean: torch.Tensor, attacked: torch.Tensor) -> torch.Tensor:
    """Boolean per sample: the attack did not change the top-1 prediction (robust)."""
    return clean.argmax(1) == attacked.argmax(1)


def output_shift(clean: torch.Tensor, attacked: torch.Tensor) -> torch.Tensor:
    """Per-sample ``KL(softmax(clean) ‖ softmax(attacked))``: how far the attack moved the
    output (small = robust)."""
    log_p = F.log_softmax(clean.float(), 1)
    log_q = F.log_softmax(attacked.float(), 1)
    return (log_p.exp() * (log_p - log_q)).sum(1)
