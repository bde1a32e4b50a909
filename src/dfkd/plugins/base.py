"""The plug-in seam: hooks that receive values and return values.

``select(batch)`` → a new batch (keep / weight / split samples; ``batch.teacher_logits`` is
filled), ``select_synthesis(batch)`` → the same for synthesis batches (optional),
``observe(batch)`` → nothing (read-only: sees every distillation batch the student trains on),
``synth_terms(ctx)`` / ``distill_terms(ctx)`` → extra named loss terms,
``adjust_logits(batch, logits)`` → student logits used by the loss, ``round_end(info)`` → values
to log, ``deployed(student)`` → the model that is evaluated and saved (default: the student
itself; a plug-in may wrap it with a registered head, :class:`dfkd.models.heads.Headed`).

Batches are immutable, so a plug-in cannot change what the loop or another plug-in holds. What
a plug-in needs from the teacher beyond its logits it declares in ``needs`` (e.g.
``("teacher_features",)``) and the loop computes it, under the run's precision. The loop calls
``check(method, source)`` before running, so a plug-in that does not fit fails up front;
``setup(env)`` runs before the student's optimiser is made, so parameters a plug-in builds there
train with the student. Options are checked and converted against the constructor's type hints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..config import checked_args, parse_spec
from ..errors import ConfigError
from ..losses.terms import StepContext
from ..registry import Registry
from ..sources.base import Batch, Source


class Plugin(nn.Module):
    """Base class; override only the hooks you need. Parameters of a plug-in (an ``nn.Module``)
    are trained with the student; its ``state_dict`` is checkpointed.

    A plug-in is constructed once to validate the run and again inside each worker process, so
    its constructor must be cheap and free of side effects; heavy state belongs in ``setup``.
    """

    name: str = "plugin"
    #: what the plug-in needs the loop to compute on distillation batches
    #: (``"teacher_features"``: ``batch.teacher_features``)
    needs: tuple[str, ...] = ()

    def check(self, method: Any, source: Source) -> str | None:
        """Return why this plug-in cannot run with ``method``/``source``, or ``None`` if it can."""
        return None

    def setup(self, env: Any) -> None:
        """Called once before the loop with the source environment."""

    def select(self, batch: Batch) -> Batch:
        return batch

    def observe(self, batch: Batch) -> None:
        """Sees each distillation batch after selection (read-only; for plug-ins that only
        record what the student trains on)."""

    def select_synthesis(self, batch: Batch) -> Batch | None:
        """Selection for a synthesis batch (``batch.teacher_logits`` filled, no gradient; the
        returned subset keeps the source's gradient). ``None`` (default): this plug-in does not
        select synthesis batches, and the loop skips the extra teacher pass it would need."""
        return None

    def synth_terms(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        return {}

    def distill_terms(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        return {}

    def adjust_logits(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        return {}

    def deployed(self, model: nn.Module) -> nn.Module:
        """The model to evaluate and save in place of ``model`` (the student, or what an earlier
        plug-in made of it)."""
        return model


PLUGINS: Registry[Callable[..., Plugin]] = Registry("plugins")


def register_plugin(name: str, **tags: Any):
    """Decorator registering a plug-in class under ``name``."""
    return PLUGINS.register(name, **tags)


def parse_plugin_spec(spec: str) -> dict[str, Any]:
    """``"name:key=value,key2=value2"`` → ``{"name": name, "args": {...}}`` (values as YAML)."""
    name, args = parse_spec(spec, "plug-in")
    return {"name": name, "args": args}


def build_plugins(specs: list[Any]) -> list[Plugin]:
    """Instantiate plug-ins from components (``.name``/``.args``), checking their arguments."""
    out = []
    for spec in specs:
        factory = PLUGINS.get(spec.name)
        plugin = factory(**checked_args(factory, dict(spec.args), f"plug-in '{spec.name}'"))
        plugin.name = spec.name
        out.append(plugin)
    return out


class PluginSet:
    """Calls every plug-in's hook in order and combines what they return."""

    def __init__(self, plugins: list[Plugin]) -> None:
        self.plugins = plugins

    def __bool__(self) -> bool:
        return bool(self.plugins)

    def check(self, method: Any, source: Source) -> None:
        for p in self.plugins:
            why = p.check(method, source)
            if why:
                raise ConfigError(f"plug-in '{p.name}' does not fit method '{method.name}': {why}")

    def setup(self, env: Any) -> None:
        for p in self.plugins:
            p.setup(env)

    def parameters(self) -> list[nn.Parameter]:
        return [q for p in self.plugins for q in p.parameters() if q.requires_grad]

    @property
    def needs(self) -> set[str]:
        """Everything the plug-ins need the loop to compute."""
        return {n for p in self.plugins for n in p.needs}

    def select(self, batch: Batch) -> Batch:
        for p in self.plugins:
            batch = p.select(batch)
        return batch

    def observe(self, batch: Batch) -> None:
        for p in self.plugins:
            p.observe(batch)

    @property
    def selects_synthesis(self) -> bool:
        """Whether any plug-in overrides :meth:`Plugin.select_synthesis`."""
        return any(type(p).select_synthesis is not Plugin.select_synthesis for p in self.plugins)

    def select_synthesis(self, batch: Batch) -> Batch:
        for p in self.plugins:
            picked = p.select_synthesis(batch)
            if picked is not None:
                batch = picked
        return batch

    def _terms(self, hook: str, ctx: StepContext) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for p in self.plugins:
            for k, v in getattr(p, hook)(ctx).items():
                out[f"{p.name}/{k}"] = v
        return out

    def synth_terms(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        return self._terms("synth_terms", ctx)

    def distill_terms(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        return self._terms("distill_terms", ctx)

    def adjust_logits(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor:
        for p in self.plugins:
            logits = p.adjust_logits(batch, logits)
        return logits

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self.plugins:
            out.update({f"{p.name}/{k}": v for k, v in p.round_end(info).items()})
        return out

    def deployed(self, model: nn.Module) -> nn.Module:
        for p in self.plugins:
            model = p.deployed(model)
        return model

    def state_dict(self) -> dict[str, Any]:
        return {p.name: p.state_dict() for p in self.plugins}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for p in self.plugins:
            if p.name in state:
                p.load_state_dict(state[p.name])
