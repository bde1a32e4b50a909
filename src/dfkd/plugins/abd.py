"""ABD (anti-backdoor data-free distillation): two plug-ins against a teacher that may carry a
backdoor. ``abd_sv``, the Shuffling Vaccine, keeps the synthesiser away from samples on which
a channel-shuffled copy of the teacher still agrees with it (a trigger's shortcut survives the
shuffle, clean features do not). ``abd_sr``, Self-Retrospection, makes the student unlearn its
own shortcut: a universal perturbation that moves the model, and a hypergradient step that
makes the student agree with itself when a few samples carry it. Losses:
:mod:`dfkd.losses.abd`."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..losses.abd import (
    divergence_of_perturbation,
    implicit_hypergradient_surrogate,
    per_sample_kl,
    retrospection_inner,
    retrospection_outer,
    vaccine_loss,
)
from ..losses.terms import StepContext
from ..sources.base import SourceEnv
from .base import Plugin, register_plugin


def shuffled_copy(model: nn.Module, layers: int, gen: torch.Generator) -> nn.Module:
    """A copy of ``model`` whose last ``layers`` convolutions (linear layers, for a model with
    no convolution) take their input channels in a random order drawn from ``gen``."""
    out = copy.deepcopy(model)
    convs = [m for m in out.modules() if isinstance(m, nn.Conv2d)]
    chosen = convs or [m for m in out.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for m in chosen[len(chosen) - min(layers, len(chosen)) :]:
            perm = torch.randperm(m.weight.shape[1], generator=gen).to(m.weight.device)
            m.weight.copy_(m.weight[:, perm])
    return out


@register_plugin("abd_sv")
class ShufflingVaccine(Plugin):
    """The Shuffling Vaccine: ``coef · vaccine_loss`` on every synthesis step, against the mean
    logits of ``copies`` channel-shuffled teachers (the last ``layers`` layers shuffled).

    With ``test_samples > 0`` the shuffled copies are first checked on that many distillation
    samples (end of the first round they fill): a useful shuffle leaves a low tail — more than
    ``tail`` of the samples with ``log10 KL(teacher ‖ shuffled)`` three standard deviations
    under the mean; otherwise the copies are drawn again, up to ``tries`` times, and the
    vaccine is switched off when none passes. Logs ``suspects`` (share of synthesis samples on
    which the shuffled teacher agrees) and ``active``.
    """

    def __init__(
        self, coef: float = 0.1, copies: int = 3, layers: int = 5, test_samples: int = 0,
        tail: float = 0.02, tries: int = 8,
    ) -> None:  # fmt: skip
        super().__init__()
        if coef < 0 or copies < 1 or layers < 1 or test_samples < 0 or tries < 1:
            raise ConfigError(
                "abd_sv: coef ≥ 0, copies ≥ 1, layers ≥ 1, test_samples ≥ 0, tries ≥ 1"
            )
        self.coef, self.copies, self.layers = coef, copies, layers
        self.test_samples, self.tail, self.max_tries = test_samples, tail, tries
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))  # shuffles drawn
        self.register_buffer("active", torch.ones((), dtype=torch.bool))
        self.register_buffer("tested", torch.tensor(test_samples == 0))
        self._seen: list[torch.Tensor] = []
        self._suspects: list[torch.Tensor] = []
        self._built = -1

    def check(self, method: Any, source: Any) -> str | None:
        return None if source.synthesizes else "it acts on synthesis; this source draws real data"

    def setup(self, env: SourceEnv) -> None:
        self._env = (env.teacher, env.fabric, env.seed)

    def _shuffled(self) -> list[nn.Module]:
        """The shuffled teachers of the current draw (rebuilt after a resume or a redraw)."""
        if self._built != int(self.draws):
            teacher, _, seed = self._env
            base = getattr(teacher, "model", teacher)
            gen = torch.Generator().manual_seed(seed * 1009 + int(self.draws))
            wrap = getattr(teacher, "with_model", lambda m: m)
            self._copies = [wrap(shuffled_copy(base, self.layers, gen)) for _ in range(self.copies)]
            self._built = int(self.draws)
        return self._copies

    def shuffled_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x).float() for m in self._shuffled()]).mean(0)

    def synth_terms(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        if not bool(self.active) or self.coef == 0:
            return {}
        shuffled = self.shuffled_logits(ctx.x)
        agree = shuffled.argmax(1) == ctx.teacher_logits.argmax(1)
        self._suspects.append(agree.float().mean().detach())
        return {"vaccine": self.coef * vaccine_loss(ctx.teacher_logits, shuffled)}

    def observe(self, batch: Any) -> None:
        if not bool(self.tested) and sum(len(x) for x in self._seen) < self.test_samples:
            self._seen.append(batch.x.detach())

    def tail_share(self, x: torch.Tensor) -> float:
        """Share of ``x`` in the low tail of ``log10 KL(teacher ‖ shuffled)``."""
        teacher = self._env[0]
        with torch.no_grad():
            kl = per_sample_kl(teacher(x).float(), self.shuffled_logits(x))
        log_kl = kl.clamp_min(1e-12).log10()
        return float((log_kl < log_kl.mean() - 3 * log_kl.std()).float().mean())

    def _test(self) -> None:
        """Draw shuffles until one leaves a low tail (or switch the vaccine off)."""
        x = torch.cat(self._seen)[: self.test_samples]
        passed = False
        for _ in range(self.max_tries):
            if self.tail_share(x) > self.tail:
                passed = True
                break
            self.draws += 1
        fabric = self._env[1]
        passed, draws = fabric.broadcast((passed, int(self.draws)), src=0)
        self.draws.fill_(draws)
        self.active.fill_(passed)
        self.tested.fill_(True)
        self._seen = []

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        if not bool(self.tested) and sum(len(x) for x in self._seen) >= self.test_samples:
            self._test()
        share = float(torch.stack(self._suspects).mean()) if self._suspects else math.nan
        self._suspects = []
        return {"suspects": share, "active": float(self.active)}


@contextmanager
def frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """Extra training-mode passes that leave the BatchNorm running statistics as they were."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None
              else None) for m in bns]  # fmt: skip
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(bns, saved, strict=True):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


@register_plugin("abd_sr")
class SelfRetrospection(Plugin):
    """Self-Retrospection on the student's steps from round ``start · rounds`` on (every
    ``every``-th step). Each such step: a universal perturbation ``δ`` (one image's shape) is
    found by ``inner_steps`` Adam steps (rate ``inner_lr``) that maximise the divergence it
    causes in ``perturb`` (``teacher``, whose backdoor the student inherits, or ``student``);
    then the term ``weight · retrospection_outer`` — the student's divergence from itself when
    a ``portion`` of the batch carries ``δ`` — is added with its implicit hypergradient through
    the student's own inner problem (``retrospection_inner``, L2 weight ``l2``; ``hg_iters``
    fixed-point iterations of a descent of rate ``hg_lr``). ``T``: the divergences'
    temperature (scaled by ``T²``). The extra student passes leave its BatchNorm statistics
    unchanged. Logs ``active`` and ``perturbation`` (the divergence ``δ`` causes in
    ``perturb``).
    """

    def __init__(
        self, start: float = 0.8, every: int = 1, inner_steps: int = 10, inner_lr: float = 0.1,
        perturb: str = "teacher", portion: float = 0.02, l2: float = 1e-3, hg_iters: int = 5,
        hg_lr: float = 0.1, T: float = 1.0, weight: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__()
        if perturb not in ("teacher", "student"):
            raise ConfigError(f"abd_sr: perturb must be 'teacher' or 'student', got {perturb!r}")
        if not 0 <= start <= 1 or every < 1 or inner_steps < 1 or hg_iters < 1:
            raise ConfigError("abd_sr: start in [0, 1], every, inner_steps and hg_iters ≥ 1")
        if not 0 < portion <= 1 or min(inner_lr, hg_lr, T) <= 0 or l2 < 0 or weight < 0:
            raise ConfigError("abd_sr: portion in (0, 1], inner_lr, hg_lr, T > 0, l2, weight ≥ 0")
        self.start, self.every, self.perturb = start, every, perturb
        self.inner_steps, self.inner_lr, self.portion = inner_steps, inner_lr, portion
        self.l2, self.hg_iters, self.hg_lr, self.T, self.weight = l2, hg_iters, hg_lr, T, weight
        self.register_buffer("round", torch.zeros((), dtype=torch.long))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self._moved: list[torch.Tensor] = []

    def setup(self, env: SourceEnv) -> None:
        self._env = env

    def _scaled(self, model: Any) -> Any:
        """``model``'s logits over ``T`` (``model`` takes the sources' normalisation)."""
        return lambda z: model(z).float() / self.T

    def find_perturbation(self, x: torch.Tensor) -> torch.Tensor:
        """The universal perturbation that most moves ``perturb`` on ``x`` (Adam from zero)."""
        env, student = self._env, self._env.student
        model = self._scaled(env.teacher if self.perturb == "teacher" else env.student_logits)
        delta = torch.zeros_like(x[:1], requires_grad=True)
        opt = torch.optim.Adam([delta], lr=self.inner_lr)
        with frozen_batchnorm_stats(student):
            for _ in range(self.inner_steps):
                loss = -divergence_of_perturbation(model, x, delta)
                opt.zero_grad(set_to_none=True)
                (grad,) = torch.autograd.grad(loss, delta)
                delta.grad = grad
                opt.step()
            with torch.no_grad():
                self._moved.append(divergence_of_perturbation(model, x, delta))
        return delta.detach()

    def _stamped(self, n: int, device: torch.device) -> torch.Tensor:
        """Which ``⌈portion · n⌉`` samples carry the perturbation (drawn from the seed and the
        call count: the same after a resume)."""
        gen = torch.Generator().manual_seed(self._env.seed * 7919 + int(self.calls))
        chosen = torch.randperm(n, generator=gen)[: max(1, math.ceil(self.portion * n))]
        mask = torch.zeros(n, 1, 1, 1)
        mask[chosen] = 1.0
        return mask.to(device)

    def _started(self) -> bool:
        """Whether the run is ``start`` of the way through (after a re-plan: of its schedule)."""
        env, r = self._env, int(self.round)
        return env.progress(r) >= self.start if env.replans else r >= self.start * env.rounds

    def distill_terms(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        student = self._env.student
        due = self._started() and int(self.calls) % self.every == 0
        self.calls += 1
        if not due or self.weight == 0:
            return {}
        x = ctx.x.detach()
        delta = self.find_perturbation(x)
        stamped = self._stamped(len(x), x.device)
        s = self._scaled(self._env.student_logits)
        t2 = self.T**2
        with frozen_batchnorm_stats(student):
            term = implicit_hypergradient_surrogate(
                lambda d: t2 * retrospection_inner(s, x, d, self.l2),
                lambda d: t2 * retrospection_outer(s, x, d, stamped),
                delta, self.hg_lr, self.hg_iters,
            )  # fmt: skip
        return {"retrospection": self.weight * term}

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        self.round.fill_(int(info["round"]) + 1)
        moved = float(torch.stack(self._moved).mean()) if self._moved else math.nan
        self._moved = []
        return {"active": float(not math.isnan(moved)), "perturbation": moved}
