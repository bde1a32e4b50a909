"""OOD escape as seed 000 describes it: detect out-of-distribution synthetic samples from the
teacher's outputs, penalise the synthesiser for producing them, and weight distillation by the
teacher's confidence."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from ..losses.terms import StepContext
from ..sources.base import Batch
from .base import Plugin, register_plugin
from .gmm import clean_probability, teacher_self_loss


def ood_score(teacher_logits: torch.Tensor, kind: str = "msp", T: float = 1.0) -> torch.Tensor:
    """Per-sample OOD score (higher = more out-of-distribution), differentiable: ``msp`` —
    ``−log max softmax`` (the negative log of the max-softmax confidence); ``energy`` — the
    free energy ``−T·logsumexp(t/T)``."""
    if kind == "msp":
        return teacher_self_loss(teacher_logits)
    if kind == "energy":
        return -T * torch.logsumexp(teacher_logits.float() / T, 1)
    raise ConfigError(f"ood_escape: score must be 'msp' or 'energy', got {kind!r}")


def ood_flags(
    scores: torch.Tensor, rule: str = "gmm", quantile: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(flags, cut)``: which samples are flagged OOD, and the score below which a sample
    counts as in-distribution. ``quantile``: the top ``quantile`` share of scores is flagged;
    ``gmm``: the high-score component of a two-component GMM (nothing, when the batch cannot be
    split)."""
    s = scores.detach().float()
    if rule == "quantile":
        cut = torch.quantile(s, 1 - quantile)
        return s > cut, cut
    if rule == "gmm":
        p_id = clean_probability(s, seed=seed).to(s.device)
        flags = p_id <= 0.5
        cut = s[~flags].max() if (~flags).any() else s.min()
        return flags, cut
    raise ConfigError(f"ood_escape: threshold must be 'gmm' or 'quantile', got {rule!r}")


@register_plugin("ood_escape")
class OODEscape(Plugin):
    """Seed 000's escape: an OOD score from the teacher's outputs (max-softmax or energy),
    thresholded per batch (2-component GMM or a quantile); a penalty on the synthesiser
    ``penalty · mean(relu(score − cut))`` that pulls flagged samples back into the teacher's
    in-distribution region; and per-sample weights on the KD terms — the teacher's confidence
    to the power ``power``, times ``ood_weight`` for flagged samples, rescaled to mean 1.

    Logs the flagged fraction of synthesis and distillation batches and the mean confidence.

    Args:
        score: ``msp`` or ``energy``; T: energy temperature.
        threshold: ``gmm`` or ``quantile`` (flag the top ``quantile`` share).
        penalty: weight of the synthesis penalty (0 turns it off).
        power: confidence-weight sharpness (0: no confidence weighting).
        ood_weight: weight of flagged samples in the KD terms (0 drops them).
    """

    def __init__(
        self,
        score: str = "msp",
        threshold: str = "gmm",
        quantile: float = 0.2,
        penalty: float = 1.0,
        power: float = 1.0,
        ood_weight: float = 0.0,
        T: float = 1.0,
    ) -> None:
        super().__init__()
        if score not in ("msp", "energy") or threshold not in ("gmm", "quantile"):
            raise ConfigError("ood_escape: score msp|energy, threshold gmm|quantile")
        if not 0 < quantile < 1 or penalty < 0 or power < 0 or not 0 <= ood_weight <= 1 or T <= 0:
            raise ConfigError(
                "ood_escape: 0 < quantile < 1, penalty ≥ 0, power ≥ 0, 0 ≤ ood_weight ≤ 1, T > 0"
            )
        self.score, self.threshold, self.quantile = score, threshold, quantile
        self.penalty, self.power, self.ood_weight, self.T = penalty, power, ood_weight, T
        # per-step values, on the device (read back once per round)
        self._log: dict[str, list[torch.Tensor]] = {"synth": [], "distill": [], "confidence": []}

    def _flags(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ood_flags(scores, self.threshold, self.quantile)

    def synth_terms(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        if self.penalty == 0:
            return {}
        s = ood_score(ctx.teacher_logits, self.score, self.T)
        flags, cut = self._flags(s)
        self._log["synth"].append(flags.float().mean())
        return {"penalty": self.penalty * torch.relu(s - cut).mean()}

    def select(self, batch: Batch) -> Batch:
        t = batch.teacher_logits
        assert t is not None
        flags, _ = self._flags(ood_score(t, self.score, self.T))
        conf = torch.softmax(t.float(), 1).amax(1)
        w = conf.pow(self.power) * torch.where(flags, self.ood_weight, 1.0)
        w = w / w.mean().clamp_min(1e-12)
        self._log["distill"].append(flags.float().mean())
        self._log["confidence"].append(conf.mean())
        return batch.weighted(w)

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        names = {"synth": "synth_ood_fraction", "distill": "ood_fraction",
                 "confidence": "teacher_confidence"}  # fmt: skip
        out = {names[k]: float(torch.stack(v).mean()) for k, v in self._log.items() if v}
        for v in self._log.values():
            v.clear()
        return out
