"""The losses of ABD (anti-backdoor data-free distillation): the Shuffling Vaccine's suspect
term on synthesis, and Self-Retrospection's perturbation losses and implicit hypergradient.

Pure functions of logits, perturbations and callables; the plug-ins in
:mod:`dfkd.plugins.abd` decide when and on what they run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def per_sample_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(p) ‖ softmax(q))`` per sample (summed over classes)."""
    log_p = F.log_softmax(p_logits.float(), 1)
    return (log_p.exp() * (log_p - F.log_softmax(q_logits.float(), 1))).sum(1)


def vaccine_loss(teacher_logits: torch.Tensor, shuffled_logits: torch.Tensor) -> torch.Tensor:
    """The Shuffling Vaccine's synthesis term: minus the mean ``KL(teacher ‖ shuffled)`` over
    the samples on which the channel-shuffled teacher still gives the teacher's answer (the
    backdoor suspects: a trigger's shortcut survives the shuffling that breaks clean
    features); 0 when there are none. Minimising it pushes the synthesiser away from them."""
    agree = shuffled_logits.argmax(1) == teacher_logits.argmax(1)
    if not agree.any():
        return teacher_logits.sum() * 0.0
    return -per_sample_kl(teacher_logits, shuffled_logits)[agree].mean()


def divergence_of_perturbation(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, delta: torch.Tensor
) -> torch.Tensor:
    """Mean ``KL(model(x) ‖ model(x + δ))``, the clean outputs held fixed: how far a universal
    perturbation ``δ`` (broadcast over the batch) moves the model."""
    with torch.no_grad():
        clean = model(x)
    return per_sample_kl(clean, model(x + delta)).mean()


def retrospection_inner(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, delta: torch.Tensor,
    l2: float,
) -> torch.Tensor:  # fmt: skip
    """Self-Retrospection's inner loss on ``δ``: ``−KL(model(x) ‖ model(x + δ)) + l2·‖δ‖²``
    (minimised: the student's own shortcut, a small universal perturbation that moves it)."""
    return -divergence_of_perturbation(model, x, delta) + l2 * delta.pow(2).sum()


def retrospection_outer(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, delta: torch.Tensor,
    stamped: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """Self-Retrospection's outer loss: the mean ``KL(model(x) ‖ model(x + δ·stamped))``, the
    clean outputs *not* held fixed (the student unlearns by agreeing with itself);
    ``stamped`` (``N×1×1×1``, 0 or 1) picks the samples that carry ``δ``."""
    return per_sample_kl(model(x), model(x + delta * stamped)).mean()


def implicit_hypergradient_surrogate(
    inner: Callable[[torch.Tensor], torch.Tensor],
    outer: Callable[[torch.Tensor], torch.Tensor],
    delta: torch.Tensor,
    lr: float,
    iters: int,
) -> torch.Tensor:
    """A scalar whose gradient with respect to ``params`` is the hypergradient of
    ``outer(δ*)``, where ``δ*`` is a fixed point of the inner descent map
    ``Φ(δ) = δ − lr·∇δ inner(δ)``: ``∂outer/∂θ + (∂Φ/∂θ)ᵀ v`` with
    ``v = Σ_{k<iters} ((∂Φ/∂δ)ᵀ)ᵏ ∂outer/∂δ`` (the fixed-point method, ``iters`` terms of
    the Neumann series). Its value is ``outer(δ)``. ``inner`` and ``outer`` are functions of
    ``δ`` that use the parameters ``θ``; no gradient flows back to ``δ`` itself."""
    d = delta.detach().requires_grad_()
    g_inner = torch.autograd.grad(inner(d), d, create_graph=True)[0]
    phi = d - lr * g_inner
    out = outer(d)
    g_out = torch.autograd.grad(out, d, retain_graph=True)[0]
    v = torch.zeros_like(d)
    for _ in range(iters):
        v = torch.autograd.grad(phi, d, grad_outputs=v, retain_graph=True)[0] + g_out
    implicit = (phi * v.detach()).sum()
    return out + implicit - implicit.detach()
