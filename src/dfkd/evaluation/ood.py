"""What a model does outside its domain: accuracy on an OOD domain, agreement with a teacher's
(misleading) OOD answers, accuracy on triggered images and a backdoor's attack success rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data import Data
from .domains import OODDomain, Trigger, load_ood_domain
from .metrics import accuracy, agreement, predict

#: the metrics a :class:`DomainEval` can report, with their display labels
METRICS = {
    "ood_accuracy": "OOD accuracy",
    "ood_teacher_agreement": "OOD agreement with teacher",
    "triggered_accuracy": "accuracy with trigger",
    "attack_success_rate": "attack success rate",
    "triggered_teacher_agreement": "agreement with teacher, trigger",
}


def attack_success_rate(logits: torch.Tensor, labels: torch.Tensor, target: int) -> float:
    """Share of triggered images whose true class is not ``target`` that are predicted as
    ``target`` (images of the target class are left out, as usual for backdoors)."""
    keep = labels != target
    if not keep.any():
        return float("nan")
    return float((logits[keep].argmax(1) == target).float().mean())


@dataclass
class DomainEval:
    """Evaluates models on an OOD domain's test split and/or on the ID test split with a
    trigger stamped on it. Bind a teacher once (:meth:`bind_teacher`) to also measure how much of
    the teacher's behaviour there a model shares."""

    data: Data
    ood: OODDomain | None = None
    trigger: Trigger | None = None
    batch_size: int = 1000
    _x_trig: torch.Tensor | None = None
    _teacher: dict[str, torch.Tensor] | None = None

    @classmethod
    def build(
        cls,
        data: Data,
        ood_dataset: str | None = None,
        trigger: str | Trigger | None = None,
        batch_size: int = 1000,
    ) -> DomainEval | None:
        """``None`` when neither an OOD dataset nor a trigger is given."""
        if not ood_dataset and not trigger:
            return None
        ood = load_ood_domain(ood_dataset, data) if ood_dataset else None
        trig = Trigger.parse(trigger) if isinstance(trigger, str) else trigger
        if trig is not None:
            trig.check(data)
        return cls(data, ood, trig, batch_size)

    @property
    def x_triggered(self) -> torch.Tensor:
        """The ID test split with the trigger stamped on it."""
        assert self.trigger is not None
        if self._x_trig is None:
            self._x_trig = self.trigger.apply(self.data.x_test, self.data)
        return self._x_trig

    def _logits(self, model: nn.Module, device: Any = None) -> dict[str, torch.Tensor]:
        out = {}
        if self.ood is not None:
            out["ood"] = predict(model, self.ood.x_test, self.batch_size, device)
        if self.trigger is not None:
            out["trigger"] = predict(model, self.x_triggered, self.batch_size, device)
        return out

    def metrics_of(self, logits: dict[str, torch.Tensor]) -> dict[str, float]:
        """The metrics of a model from its logits on the OOD split / triggered split."""
        m: dict[str, float] = {}
        if "ood" in logits:
            assert self.ood is not None
            if self.ood.close_set:
                m["ood_accuracy"] = accuracy(logits["ood"], self.ood.y_test)
            if self._teacher is not None:
                m["ood_teacher_agreement"] = agreement(logits["ood"], self._teacher["ood"])
        if "trigger" in logits:
            assert self.trigger is not None
            m["triggered_accuracy"] = accuracy(logits["trigger"], self.data.y_test)
            if self.trigger.target is not None:
                m["attack_success_rate"] = attack_success_rate(
                    logits["trigger"], self.data.y_test, self.trigger.target
                )
            if self._teacher is not None:
                m["triggered_teacher_agreement"] = agreement(
                    logits["trigger"], self._teacher["trigger"]
                )
        return m

    def bind_teacher(self, teacher: nn.Module, device: Any = None) -> dict[str, float]:
        """Remember the teacher's answers; returns the teacher's own metrics, prefixed
        ``teacher_``."""
        self._teacher = None
        logits = self._logits(teacher, device)
        own = self.metrics_of(logits)
        self._teacher = logits
        return {f"teacher_{k}": v for k, v in own.items()}

    def share_teacher(self, other: DomainEval) -> None:
        """Use the teacher answers bound to ``other`` (the same domains, possibly in another
        input normalisation)."""
        self._teacher = other._teacher

    def __call__(self, model: nn.Module, device: Any = None) -> dict[str, float]:
        return self.metrics_of(self._logits(model, device))

    def describe(self) -> dict[str, Any]:
        """What is evaluated (for metrics files and cards)."""
        d: dict[str, Any] = {}
        if self.ood is not None:
            d["ood_dataset"] = self.ood.name
            d["ood_close_set"] = self.ood.close_set
        if self.trigger is not None:
            d["trigger"] = self.trigger.spec
        return d
