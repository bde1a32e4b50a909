"""The objective: registered terms bound to their weights, summed per step, and the per-round
mean of every term kept on the device (read back once per round)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import checked_args
from ..errors import ConfigError
from ..losses.synth_terms import matched_statistics
from ..losses.terms import TERMS, StepContext
from ..teachers.stats import TeacherStats
from ..teachers.taps import Taps, contrast_layers, last_linear


@dataclass
class BoundTerm:
    """A registered term with its weight and hyper-parameters (not a frozen dataclass, which
    Fabric's process launcher refuses to pass; nothing changes one after binding)."""

    name: str
    fn: Callable[..., torch.Tensor]
    weight: float
    kwargs: dict[str, Any]
    needs: tuple[str, ...]

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        return self.fn(ctx, **self.kwargs)


def bind_terms(specs: dict[str, dict[str, Any]], phase: str) -> list[BoundTerm]:
    """Resolve ``{name: {weight, **hparams}}`` against the term registry, checking each
    (phase, option names and, from the term's type hints, option types)."""
    group = f"{phase}_terms"
    out = []
    for name, raw in specs.items():
        entry = TERMS.entry(name)
        if entry.tags["phase"] not in (phase, "any"):
            raise ConfigError(
                f"term '{name}' is a {entry.tags['phase']} term; it cannot be in {group}"
            )
        kwargs = dict(raw)
        weight = float(kwargs.pop("weight", 1.0))
        kwargs = checked_args(entry.obj, kwargs, f"term '{group}.{name}'", skip=("ctx",))
        if weight != 0.0:
            out.append(BoundTerm(name, entry.obj, weight, kwargs, tuple(entry.tags["needs"])))
    return out


def needs_of(terms: list[BoundTerm]) -> set[str]:
    """Everything the ``terms`` need from a step."""
    return {n for t in terms for n in t.needs}


def weighted_sum(
    terms: list[BoundTerm], ctx: StepContext, extra: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and the unweighted value of each term (plug-in terms come pre-weighted)."""
    values = {t.name: t(ctx) for t in terms}
    total = sum(
        (t.weight * values[t.name] for t in terms), start=torch.zeros((), device=ctx.x.device)
    )
    for v in extra.values():
        total = total + v
    return total, {**values, **extra}


@dataclass
class TermMeter:
    """Per-round sums of logged values, kept on the device in float64 (no host sync per step);
    :meth:`means` reads them back once."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, values: dict[str, torch.Tensor], prefix: str = "") -> None:
        for k, v in values.items():
            key = prefix + k
            v = v.detach().to(torch.float64)
            self.sums[key] = self.sums[key] + v if key in self.sums else v
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        """Mean of every value since the last call (one transfer), then reset."""
        if not self.sums:
            return {}
        host = torch.stack(list(self.sums.values())).cpu().tolist()
        out = {k: s / self.counts[k] for k, s in zip(self.sums, host, strict=True)}
        self.sums, self.counts = {}, {}
        return out


class StatMemory:
    """What a run has synthesised, in the statistics its matching term compares: each layer's
    ``(mean, var)`` averaged over rounds with ``momentum`` (the last synthesis step of each
    round counts), which the term reads as ``ctx.taps["stat_memory"]`` (``stat_match``'s
    ``momentum``; Fast-DFKD's and NAYER's ``bn_mmt``). Part of the run state."""

    def __init__(self, momentum: float) -> None:
        self.momentum = momentum
        self.stats: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._last: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def context(self) -> dict[str, Any]:
        """What the terms see of it."""
        return {"stat_memory": self.stats}

    def observe(self, ctx: StepContext) -> None:
        """Note a synthesis step's batch statistics (the round's last one is committed)."""
        self._last = [(m.detach(), v.detach()) for m, v in matched_statistics(ctx)[0]]

    def commit(self) -> None:
        """At a round's end: fold the round's last batch statistics into the memory."""
        last, self._last = self._last, None
        if last is None:
            return
        if self.stats is None:
            self.stats = last
            return
        m = self.momentum
        self.stats = [(m * hm + (1 - m) * lm, m * hv + (1 - m) * lv)
                      for (hm, hv), (lm, lv) in zip(self.stats, last, strict=True)]  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        if self.stats is None:
            return {}
        return {"mean": [m.cpu() for m, _ in self.stats], "var": [v.cpu() for _, v in self.stats]}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.stats = None
        if state:
            self.stats = [(m.to(device), v.to(device))
                          for m, v in zip(state["mean"], state["var"], strict=True)]  # fmt: skip


def stat_memory(terms: list[BoundTerm]) -> StatMemory | None:
    """The memory the run's statistics term blends with (``None`` when none does)."""
    momentum = max((float(t.kwargs.get("momentum", 0.0)) for t in terms
                    if t.name == "stat_match"), default=0.0)  # fmt: skip
    if not 0 <= momentum < 1:
        raise ConfigError(f"synth_terms.stat_match.momentum must be in [0, 1), got {momentum}")
    return StatMemory(momentum) if momentum > 0 else None


TEACHER_NEEDS = (
    "teacher_bn",
    "teacher_features",
    "teacher_layers",
    "teacher_stats",
    "teacher_instance_means",
)


class TeacherTaps(Taps):
    """The teacher's taps, exposed to terms as ``ctx.taps``."""

    stats: TeacherStats | None = None

    def as_context(self) -> dict[str, Any]:
        feats = next(iter(self.inputs.values()), None)
        return {
            "bn": self.bn,
            "bn_refs": self.bn_refs,
            "features": feats,
            "outputs": self.outputs,
            "means": self.means,
            "stats": self.stats,
        }


@contextmanager
def teacher_taps(
    teacher: nn.Module, needs: set[str], stats: TeacherStats | None = None
) -> Iterator[TeacherTaps | None]:
    """Tap the teacher's forward for what the terms need (nothing, when they need nothing)."""
    if not needs.intersection(TEACHER_NEEDS):
        yield None
        return
    inputs = [last_linear(teacher)] if "teacher_features" in needs else []
    file_layers = {"teacher_layers", "teacher_stats"}.intersection(needs) and stats is not None
    layers = stats.layers if file_layers else []
    bn = "teacher_bn" in needs or ("teacher_stats" in needs and stats is None)
    means = contrast_layers(teacher) if "teacher_instance_means" in needs else []
    with TeacherTaps(teacher, layers=layers, bn=bn, inputs=inputs, means=means) as taps:
        taps.stats = stats
        yield taps


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily stop gradients to ``model``'s parameters (inputs still receive them)."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
