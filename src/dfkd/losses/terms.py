"""Named objective terms: thin adapters from the loop's step context to the pure losses.

A term is ``fn(ctx: StepContext, **hparams) -> scalar tensor``. Methods name their terms and
weights in config (``distill_terms: {kd_kl: {weight: 0.9, T: 4}}``); the loop sums
``weight · term`` and logs each term.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError, DfkdError
from ..registry import Registry
from .kd import cross_entropy, js_div, kl_div, l1_logits, rescale_logits, standardize_logits
from .spectral import spectral_pair_loss


@dataclass
class StepContext:
    """What one synthesis or distillation step has computed, handed to terms and plug-ins.

    Attributes:
        phase: ``"synth"`` or ``"distill"``.
        x: the inputs of this step (normalised images).
        teacher_logits: teacher outputs on ``x``.
        student_logits: student outputs on ``x`` (after any plug-in ``adjust_logits``).
        labels: ground-truth labels when the source has them (real data), else ``None``.
        weight: per-sample weights from plug-ins, or ``None``.
        taps: teacher layer outputs / statistics captured this step, by module path.
        extras: free-form values a source or plug-in adds for its own terms.
    """

    phase: str
    x: torch.Tensor
    teacher_logits: torch.Tensor
    student_logits: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    taps: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


TermFn = Callable[..., torch.Tensor]
TERMS: Registry[TermFn] = Registry("terms")


def register_term(name: str, phase: str, needs: tuple[str, ...] = ()):
    """Decorator registering an objective term for ``phase`` (``"synth"``, ``"distill"`` or
    ``"any"``); ``needs`` names what it requires (``"labels"``, ``"student"``)."""
    return TERMS.register(name, phase=phase, needs=needs)


def _student(ctx: StepContext) -> torch.Tensor:
    if ctx.student_logits is None:
        raise DfkdError("this term needs student logits, which this step did not compute")
    return ctx.student_logits


def _pair(ctx: StepContext, standardize: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher logits, each standardised per sample to standard deviation
    ``standardize`` when it is given."""
    s, t = _student(ctx), ctx.teacher_logits
    if standardize is None:
        return s, t
    return standardize_logits(s, standardize), standardize_logits(t, standardize)


@register_term("kd_kl", phase="any", needs=("student",))
def kd_kl_term(
    ctx: StepContext, T: float = 4.0, standardize: float | None = None,
    teacher_std: float | None = None, min_teacher_std: float | None = None,
) -> torch.Tensor:  # fmt: skip
    """KL(teacher ‖ student) at temperature T, scaled by T² (``standardize``: of logits
    standardised per sample to that standard deviation, blind to either network's logit
    scale; ``teacher_std``: the teacher's logits rescaled, by one factor per batch, to that
    mean per-sample standard deviation, so the targets are as sharp whatever the teacher's
    logit scale on the synthetic images; ``min_teacher_std``: the same, only for batches
    whose logits are softer than that)."""
    if sum(v is not None for v in (standardize, teacher_std, min_teacher_std)) > 1:
        raise ConfigError(
            "term 'kd_kl': give at most one of standardize, teacher_std and min_teacher_std"
        )
    s, t = _pair(ctx, standardize)
    if teacher_std is not None:
        t = rescale_logits(t, teacher_std)
    elif min_teacher_std is not None:
        t = rescale_logits(t, min_teacher_std, only_up=True)
    return kl_div(s, t, T, ctx.weight)


@register_term("kd_l1", phase="any", needs=("student",))
def kd_l1_term(ctx: StepContext, standardize: float | None = None) -> torch.Tensor:
    """Mean absolute difference between student and teacher logits (``standardize``: of
    logits standardised per sample to that standard deviation)."""
    s, t = _pair(ctx, standardize)
    return l1_logits(s, t, ctx.weight)


@register_term("kd_js", phase="any", needs=("student",))
def kd_js_term(ctx: StepContext, T: float = 1.0, standardize: float | None = None) -> torch.Tensor:
    """Jensen–Shannon divergence between student and teacher at temperature T (``standardize``:
    of logits standardised per sample to that standard deviation)."""
    s, t = _pair(ctx, standardize)
    return js_div(s, t, T, ctx.weight)


@register_term("ce", phase="distill", needs=("student", "labels"))
def ce_term(ctx: StepContext) -> torch.Tensor:
    """Cross-entropy of the student against the ground-truth labels (real data only)."""
    if ctx.labels is None:
        raise DfkdError("term 'ce' needs labelled data; use it only with a real-data source")
    return cross_entropy(_student(ctx), ctx.labels, ctx.weight)


@register_term("spectral_pair", phase="distill", needs=("student", "feature_pairs"))
def spectral_pair_term(ctx: StepContext, layers: list[list[str]] | None = None) -> torch.Tensor:
    """Seed 003's teacher-vs-student spectral term: ``Σ_l ‖ |F(φ_T^l)| − |F(A_l φ_S^l)| ‖²``
    (mean over elements per layer) over paired layers, with 1×1 adapters ``A_l`` where channel
    counts differ. ``layers`` (``[[teacher_path, student_path], ...]``) is read by the loop;
    by default the last convolution of every resolution both networks share is paired."""
    pairs = ctx.taps.get("pairs")
    if not pairs:
        raise DfkdError("term 'spectral_pair' needs paired layer outputs, which this step lacks")
    return torch.stack([spectral_pair_loss(s, t) for s, t in pairs]).sum()
