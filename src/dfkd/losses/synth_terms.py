"""Named synthesis terms (and the logit criteria as adversarial terms) for the loop.

``needs`` tells the loop what to capture: ``student`` (student logits on the synthetic batch),
``teacher_bn`` (batch statistics at every teacher BatchNorm layer, with the running statistics),
``teacher_features`` (the input of the teacher's last linear layer), ``teacher_layers`` (the
outputs of the layers named in the run's statistics file, with the file itself).
"""

from __future__ import annotations

import torch

from ..errors import DfkdError
from .bn import blend_stats, bn_stat_loss, channel_stats
from .generator import (
    activation_loss,
    adversarial_loss,
    competition_loss,
    decision_adversarial_loss,
    information_entropy_loss,
    one_hot_loss,
)
from .kd import cross_entropy, standardize_logits
from .priors import input_gradient_penalty, l2_prior, total_variation
from .spectral import spectral_stat_loss
from .terms import StepContext, register_term


@register_term("one_hot", phase="synth")
def one_hot_term(ctx: StepContext) -> torch.Tensor:
    """Teacher cross-entropy against its own argmax (class prior of DAFL / DFQ)."""
    return one_hot_loss(ctx.teacher_logits)


@register_term("class_target", phase="synth", needs=("targets",))
def class_target_term(ctx: StepContext) -> torch.Tensor:
    """Teacher cross-entropy against the target class the source gave each image
    (DeepInversion's original class prior; needs a source with ``targets``)."""
    targets = ctx.extras.get("targets")
    if targets is None:
        raise DfkdError("term 'class_target' needs target classes; use source pixels:targets=true")
    return cross_entropy(ctx.teacher_logits, targets)


@register_term("info_entropy", phase="synth")
def info_entropy_term(ctx: StepContext) -> torch.Tensor:
    """Σ p̄ log p̄ of the batch-mean teacher softmax (class balance, DAFL / DFQ)."""
    return information_entropy_loss(ctx.teacher_logits)


@register_term("activation", phase="synth", needs=("teacher_features",))
def activation_term(ctx: StepContext) -> torch.Tensor:
    """Negative mean |feature| of the teacher's penultimate layer (DAFL)."""
    return activation_loss(ctx.taps["features"])


@register_term("adversarial", phase="synth", needs=("student",))
def adversarial_term(
    ctx: StepContext, criterion: str = "l1", T: float = 1.0, standardize: float | None = None
) -> torch.Tensor:
    """Negative student–teacher discrepancy, ``criterion`` l1 (DFAD), kl (ZSKT/DFQ) or js, at
    temperature ``T`` (kl, js); ``standardize``: of logits standardised per sample to that
    standard deviation."""
    if ctx.student_logits is None:
        raise DfkdError("term 'adversarial' needs student logits")
    s, t = ctx.student_logits, ctx.teacher_logits
    if standardize is not None:
        s, t = standardize_logits(s, standardize), standardize_logits(t, standardize)
    return adversarial_loss(s, t, criterion, T)


@register_term("decision_adversarial", phase="synth", needs=("student",))
def decision_adversarial_term(ctx: StepContext, T: float = 1.0) -> torch.Tensor:
    """Negative KL(teacher ‖ student) at temperature ``T`` on the samples where both predict the
    same class (CMI, Fast-DFKD): hard samples that stay on the teacher's side of the student's
    boundary."""
    if ctx.student_logits is None:
        raise DfkdError("term 'decision_adversarial' needs student logits")
    return decision_adversarial_loss(ctx.student_logits, ctx.teacher_logits, T)


@register_term("competition", phase="synth", needs=("student",))
def competition_term(ctx: StepContext, T: float = 3.0, form: str = "js") -> torch.Tensor:
    """ADI competition 1 − JS(student, teacher) at temperature ``T`` (Adaptive DeepInversion;
    ``form`` 'adi': the clamped element-mean JS of the ADI / TA-DFKD code)."""
    if ctx.student_logits is None:
        raise DfkdError("term 'competition' needs student logits")
    return competition_loss(ctx.student_logits, ctx.teacher_logits, T, form)


@register_term("tv", phase="synth")
def tv_term(ctx: StepContext, p: int = 2, reduction: str = "mean") -> torch.Tensor:
    """Total variation of the synthetic batch (p = 1 or 2; reduction 'mean' or 'norm')."""
    return total_variation(ctx.x, p, reduction)


@register_term("l2", phase="synth")
def l2_term(ctx: StepContext, reduction: str = "mean") -> torch.Tensor:
    """Mean Euclidean norm of the synthetic images (``reduction`` 'norm': of the whole batch)."""
    return l2_prior(ctx.x, reduction)


@register_term("bn_stats", phase="synth", needs=("teacher_bn",))
def bn_stats_term(
    ctx: StepContext, first_multiplier: float = 1.0, kind: str = "l2"
) -> torch.Tensor:
    """Batch statistics at every teacher BatchNorm layer against its running statistics
    (``kind``: the distance, ``"l2"`` or ``"kl"``, :func:`~dfkd.losses.bn.bn_stat_distance`;
    ``first_multiplier``: the first layer's weight, DeepInversion's ImageNet setting)."""
    return bn_stat_loss(*bn_statistics(ctx, "bn_stats"), first_multiplier, kind)


def bn_statistics(ctx: StepContext, term: str) -> tuple[list, list]:
    """Each teacher BatchNorm layer's batch statistics and its running statistics."""
    bn, refs = ctx.taps.get("bn"), ctx.taps.get("bn_refs")
    if not bn:
        raise DfkdError(
            f"term '{term}' needs a teacher with BatchNorm layers; for a teacher "
            "without BatchNorm use a statistics file (dfkd stats collect)"
        )
    return list(bn.values()), list(refs.values())


@register_term("feature_stats", phase="synth", needs=("teacher_layers",))
def feature_stats_term(
    ctx: StepContext, first_multiplier: float = 1.0, kind: str = "l2"
) -> torch.Tensor:
    """Channel statistics of the tapped teacher layers against a statistics file (statistical
    feature matching for teachers with or without BatchNorm; ``kind`` and
    ``first_multiplier`` as for ``bn_stats``)."""
    return bn_stat_loss(*file_statistics(ctx), first_multiplier, kind)


def file_statistics(ctx: StepContext) -> tuple[list, list]:
    """The batch's channel statistics at the statistics file's layers, and the file's."""
    stats, outs = ctx.taps["stats"], ctx.taps["outputs"]
    batch = [channel_stats(outs[n]) for n in stats.layers]
    refs = [(stats.mean[n].to(ctx.x.device), stats.var[n].to(ctx.x.device)) for n in stats.layers]
    return batch, refs


@register_term("spectral_stats", phase="synth", needs=("teacher_layers",))
def spectral_stats_term(ctx: StepContext) -> torch.Tensor:
    """Batch-mean amplitude spectrum of each tapped 4-D teacher layer against the statistics
    file's spectrum, summed over layers (spectral feature matching)."""
    stats, outs = ctx.taps["stats"], ctx.taps["outputs"]
    layers = [n for n in stats.layers if n in stats.spectrum]
    if not layers:
        raise DfkdError(
            "the statistics file holds no spectra (no 4-D layers); collect them on conv layers"
        )
    return sum(spectral_stat_loss(outs[n], stats.spectrum[n]) for n in layers)  # type: ignore[return-value]


def matched_statistics(
    ctx: StepContext,
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[tuple[torch.Tensor, torch.Tensor]]]:
    """What statistical feature matching compares: the batch's channel statistics at the
    statistics file's layers and the file's (when the run has one), else at the teacher's
    BatchNorm layers and their running statistics."""
    if ctx.taps.get("stats") is not None:
        return file_statistics(ctx)
    return bn_statistics(ctx, "stat_match")


@register_term("stat_match", phase="synth", needs=("teacher_stats",))
def stat_match_term(
    ctx: StepContext,
    first_multiplier: float = 1.0,
    kind: str = "auto",
    momentum: float = 0.0,
) -> torch.Tensor:
    """Statistical feature matching: the statistics file's layers when the run has one, else the
    teacher's BatchNorm running statistics (``first_multiplier`` as for ``bn_stats``).

    ``kind``: ``"l2"``, ``"kl"`` (see :func:`~dfkd.losses.bn.bn_stat_distance`) or ``"auto"``:
    KL on a statistics file, whose layers keep the teacher's own activation scale (tens to
    hundreds of L2 units per step on the zoo's BN-free teachers, against 1-25 with BatchNorm),
    and L2 on BatchNorm running statistics, where the presets' weights were measured (the
    default; ``benchmarks/explore/zoo.jsonl``, cases ``*-kl``). On a teacher with neither, a
    run leaves the term out (:func:`dfkd.engine.parts.statistics_form`).

    ``momentum``: match the batch's statistics blended with the run's memory of earlier
    rounds (``ctx.taps["stat_memory"]``, :func:`~dfkd.losses.bn.blend_stats`; the authors'
    ``bn_mmt`` of Fast-DFKD and NAYER, 0.9 in their scripts), not the batch's alone.
    """
    if kind == "auto":
        kind = "kl" if ctx.taps.get("stats") is not None else "l2"
    batch, refs = matched_statistics(ctx)
    batch = blend_stats(batch, ctx.taps.get("stat_memory"), momentum)
    return bn_stat_loss(batch, refs, first_multiplier, kind)


@register_term("smoothness", phase="synth")
def smoothness_term(ctx: StepContext) -> torch.Tensor:
    """‖∇ₓ log p_T(ŷ | x)‖², ŷ the teacher's prediction (seed 003's smoothness prior)."""
    if not ctx.x.requires_grad:
        raise DfkdError(
            "term 'smoothness' needs inputs that carry gradient (a synthesising source)"
        )
    logp = torch.log_softmax(ctx.teacher_logits.float(), dim=1)
    return input_gradient_penalty(logp.gather(1, logp.argmax(1, keepdim=True)).squeeze(1), ctx.x)
