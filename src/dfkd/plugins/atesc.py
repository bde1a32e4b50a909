"""ATEsc (Hong et al., ICML 2025): escape a non-transferable teacher's OOD trap by splitting the
synthetic samples by the teacher's adversarial robustness — fragile (ID-like) samples are
distilled as usual, robust (OOD-like) ones are forgotten."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..losses.kd import kl_div
from ..losses.terms import StepContext
from ..sources.base import Batch, SourceEnv
from ..teachers.robustness import PGDProbe, output_shift, prediction_kept
from .base import Plugin, register_plugin
from .gmm import clean_probability

ROBUST = "atesc_robust"


def forget_uniform(student: torch.Tensor) -> torch.Tensor:
    """Per-sample ``KL(U ‖ softmax(s))``: pushes the student to the uniform answer."""
    log_p = F.log_softmax(student.float(), 1)
    c = student.shape[1]
    return -math.log(c) - log_p.mean(1)


def forget_max_entropy(student: torch.Tensor) -> torch.Tensor:
    """Per-sample negative entropy of ``softmax(s)`` (minimising it maximises the entropy)."""
    log_p = F.log_softmax(student.float(), 1)
    return (log_p.exp() * log_p).sum(1)


def forget_negative_kd(
    student: torch.Tensor, teacher: torch.Tensor, T: float = 1.0, clip: float = 1.0
) -> torch.Tensor:
    """Per-sample ``−min(KL_T(t ‖ s), clip)``: move away from the teacher, boundedly."""
    per = torch.stack([kl_div(s[None], t[None], T) for s, t in zip(student, teacher)])
    return -per.clamp(max=clip)


#: forgetting losses by name: ``fn(student, teacher, T, clip)`` → per-sample loss
FORGET: dict[str, Any] = {
    "uniform": lambda s, t, T, clip: forget_uniform(s),
    "max_entropy": lambda s, t, T, clip: forget_max_entropy(s),
    "negative_kd": forget_negative_kd,
}
SPLITS = ("flip", "kl_median", "kl_gmm")
SCOPES = ("all", "sink")


def robust_split(
    clean: torch.Tensor, attacked: torch.Tensor, rule: str = "flip", seed: int = 0
) -> torch.Tensor:
    """Boolean mask of robust samples: ``flip`` — the prediction survived the attack;
    ``kl_median`` — the output moved no more than the batch median (the lower half);
    ``kl_gmm`` — the output shift falls in the low component of a two-component GMM."""
    if rule == "flip":
        return prediction_kept(clean, attacked)
    shift = output_shift(clean, attacked)
    if rule == "kl_median":
        return shift <= shift.median()
    if rule == "kl_gmm":
        return (clean_probability(shift, seed=seed) > 0.5).to(clean.device)
    raise ConfigError(f"atesc: split must be one of {SPLITS}, got {rule!r}")


@register_plugin("atesc")
class ATEsc(Plugin):
    """Adversarial Trap Escaping: a PGD probe of the teacher on every distillation sample;
    robust samples (prediction kept) leave the KD terms and get a forgetting loss instead.

    Logs the robust fraction of every step (``atesc/robust_fraction`` per round in
    ``history.csv``; the per-step trace in the plug-in state).

    Args:
        eps, step: PGD radius and step in pixel units (``None``: 8/255 and 2/255, ATEsc's CIFAR
            values, for images of 32 px or more; 0.1 and 0.025 below, where 8/255 flips
            almost nothing — see docs/methods.md).
        iters: PGD steps (``None``: 10 for images of 32 px or more, 5 below).
        split: ``flip`` (default), ``kl_median`` or ``kl_gmm`` (:func:`robust_split`).
        forget: ``uniform`` (default), ``max_entropy`` or ``negative_kd``.
        weight: λ, the weight of the forgetting loss (paper: 1).
        T, clip: temperature and bound of ``negative_kd``.
        scope: ``all`` (default) — the split runs over the whole batch; ``sink`` — only samples
            the teacher assigns to the *sink* class (the class the probe's successful attacks
            land in most often, a running share over batches — a backdoor's target, as in the
            audit) may be robust: the split runs among them, every other sample stays in KD.
        momentum: weight of the past in the running share of attacks per target class.
    """

    def __init__(
        self,
        eps: float | None = None,
        step: float | None = None,
        iters: int | None = None,
        split: str = "flip",
        forget: str = "uniform",
        weight: float = 1.0,
        T: float = 1.0,
        clip: float = 1.0,
        scope: str = "all",
        momentum: float = 0.9,
    ) -> None:
        super().__init__()
        if split not in SPLITS or forget not in FORGET or scope not in SCOPES:
            raise ConfigError(
                f"atesc: split in {SPLITS}, forget in {tuple(FORGET)}, scope in {SCOPES}"
            )
        if not 0 <= momentum < 1:
            raise ConfigError(f"atesc: momentum must be in [0, 1), got {momentum}")
        if (eps is not None and eps <= 0) or (step is not None and step <= 0):
            raise ConfigError("atesc: eps and step must be > 0 (pixel units)")
        if (iters is not None and iters < 1) or weight < 0 or T <= 0 or clip <= 0:
            raise ConfigError("atesc: iters ≥ 1, weight ≥ 0, T > 0 and clip > 0 required")
        self.eps, self.step, self.iters = eps, step, iters
        self.split, self.forget, self.weight, self.T, self.clip = split, forget, weight, T, clip
        self.scope, self.momentum = scope, momentum
        self.sink_share: torch.Tensor | None = None  # running share of attacks per target class
        self._fractions: list[float] = []
        self.robust_trace: list[float] = []
        self._probe: PGDProbe | None = None
        self._norm: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._teacher: tuple[Any, ...] = ()  # a tuple: not registered as a sub-module

    @staticmethod
    def default_probe(image_size: int) -> PGDProbe:
        """ATEsc's defaults for an input scale."""
        if image_size >= 32:
            return PGDProbe(8 / 255, 2 / 255, 10)
        return PGDProbe(0.1, 0.025, 5)

    def setup(self, env: SourceEnv) -> None:
        base = self.default_probe(min(env.data.image_size))
        self._probe = PGDProbe(
            self.eps if self.eps is not None else base.eps,
            self.step if self.step is not None else base.step,
            self.iters if self.iters is not None else base.iters,
        )
        low, high = env.data.bounds
        self._norm = (torch.tensor(env.data.std).view(1, -1, 1, 1), low, high)
        self._teacher = (env.teacher,)

    def select(self, batch: Batch) -> Batch:
        assert self._probe is not None and self._norm is not None
        _, clean, attacked = self._probe.attack(self._teacher[0], batch.x, *self._norm)
        if self.scope == "all":
            robust = robust_split(clean, attacked, self.split)
        else:
            robust = self._sink_split(clean, attacked)
        frac = float(robust.float().mean())
        self._fractions.append(frac)
        self.robust_trace.append(frac)
        return batch.weighted((~robust).float()).with_extras(**{ROBUST: robust})

    def _sink_split(self, clean: torch.Tensor, attacked: torch.Tensor) -> torch.Tensor:
        """Robust mask restricted to the sink class (see ``scope``)."""
        pred, landed = clean.argmax(1), attacked.argmax(1)
        c = clean.shape[1]
        flipped = landed != pred
        share = torch.bincount(landed[flipped], minlength=c).float() / flipped.sum().clamp_min(1)
        if self.sink_share is None:
            self.sink_share = share
        elif flipped.any():
            old = self.sink_share.to(share.device)
            self.sink_share = self.momentum * old + (1 - self.momentum) * share
        sink = int(self.sink_share.argmax())
        robust = torch.zeros_like(pred, dtype=torch.bool)
        members = (pred == sink).nonzero().flatten()
        if len(members) >= 2:
            robust[members] = robust_split(clean[members], attacked[members], self.split)
        return robust

    def distill_terms(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        robust = ctx.extras.get(ROBUST)
        if robust is None or not robust.any() or ctx.student_logits is None or self.weight == 0:
            return {}
        per = FORGET[self.forget](
            ctx.student_logits[robust], ctx.teacher_logits[robust], self.T, self.clip
        )
        return {"forget": self.weight * per.mean()}

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        out = {}
        if self._fractions:
            out["robust_fraction"] = sum(self._fractions) / len(self._fractions)
        if self.scope == "sink" and self.sink_share is not None:
            out["sink_class"] = float(self.sink_share.argmax())
        self._fractions.clear()
        return out

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        state = {"robust_trace": torch.tensor(self.robust_trace, dtype=torch.float64)}
        if self.sink_share is not None:
            state["sink_share"] = self.sink_share.detach().cpu()
        return state

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.robust_trace = [float(v) for v in state["robust_trace"].tolist()]
        if "sink_share" in state:
            self.sink_share = state["sink_share"].clone()
