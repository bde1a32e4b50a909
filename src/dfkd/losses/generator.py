"""Generator-side terms of DAFL, DFQ, DFAD and DeepInversion/ADI, as pure functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .kd import js_div, kl_div, l1_logits


def one_hot_loss(teacher_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the teacher against its own argmax (DAFL's ``L_oh``, the class prior)."""
    return F.cross_entropy(teacher_logits, teacher_logits.argmax(1))


def activation_loss(features: torch.Tensor) -> torch.Tensor:
    """Negative mean absolute activation (DAFL's ``L_a``): rewards strongly activated features."""
    return -features.abs().mean()


def information_entropy_loss(teacher_logits: torch.Tensor) -> torch.Tensor:
    """``Σ_c p̄_c log p̄_c`` with ``p̄`` the batch-mean teacher softmax (DAFL's ``L_ie``; minimal
    when the batch is balanced over classes)."""
    p = F.softmax(teacher_logits, dim=1).mean(0)
    return (p * p.clamp_min(1e-12).log()).sum()


def adversarial_loss(
    student: torch.Tensor, teacher: torch.Tensor, criterion: str = "l1", T: float = 1.0
) -> torch.Tensor:
    """Negative student–teacher discrepancy: the generator maximises what the student minimises.
    ``criterion`` is ``"l1"`` (DFAD), ``"kl"`` (ZSKT / DFQ) or ``"js"``."""
    if criterion == "l1":
        return -l1_logits(student, teacher)
    if criterion == "kl":
        return -kl_div(student, teacher, T)
    if criterion == "js":
        return -js_div(student, teacher, T)
    raise ValueError(f"adversarial_loss: criterion must be l1, kl or js, got '{criterion}'")


def decision_adversarial_loss(
    student: torch.Tensor, teacher: torch.Tensor, T: float = 1.0
) -> torch.Tensor:
    """Negative ``T²·KL(softmax(t/T) ‖ softmax(s/T))`` of the samples on which the student
    predicts the teacher's class (0 on the others), averaged over the whole batch: the
    adversarial term of CMI and Fast-DFKD, which moves samples toward the student's decision
    boundary without pushing them across it."""
    log_p_s = F.log_softmax(student / T, dim=1)
    log_p_t = F.log_softmax(teacher / T, dim=1)
    per = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1) * (T * T)
    agree = (student.argmax(1) == teacher.argmax(1)).to(per.dtype)
    return -(per * agree).mean()


def js_div_adi(student: torch.Tensor, teacher: torch.Tensor, T: float = 3.0) -> torch.Tensor:
    """The "JS" of the Adaptive-DeepInversion and TA-DFKD code: with ``P, Q = softmax(·/T)`` and
    ``M = (P + Q) / 2``, each clamped to ``[0.01, 0.99]``,
    ``½·mean(M (log M − log P)) + ½·mean(M (log M − log Q))`` — i.e. ``KL(M‖·)`` (the argument
    order of ``nn.KLDivLoss(log P, M)``) averaged over every element, not summed over classes."""
    p = F.softmax(student / T, dim=1)
    q = F.softmax(teacher / T, dim=1)
    m = (0.5 * (p + q)).clamp(0.01, 0.99)
    p, q = p.clamp(0.01, 0.99), q.clamp(0.01, 0.99)
    log_m = m.log()
    return 0.5 * (m * (log_m - p.log())).mean() + 0.5 * (m * (log_m - q.log())).mean()


def competition_loss(
    student: torch.Tensor, teacher: torch.Tensor, T: float = 3.0, form: str = "js"
) -> torch.Tensor:
    """ADI competition: ``1 − JS(student, teacher)`` clamped to ``[0, 1]``; minimising it looks for
    inputs where the two disagree (Adaptive DeepInversion, T = 3). ``form="js"`` is the
    Jensen–Shannon divergence; ``form="adi"`` the clamped element-mean form of the ADI / TA-DFKD
    code (:func:`js_div_adi`)."""
    if form == "js":
        js = js_div(student, teacher, T)
    elif form == "adi":
        js = js_div_adi(student, teacher, T)
    else:
        raise ValueError(f"competition_loss: form must be 'js' or 'adi', got '{form}'")
    return 1.0 - js.clamp(0.0, 1.0)
