"""The source interface: ``draw`` + ``update`` for synthesis, ``sample`` for distillation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from ..config import checked_args
from ..data import Data
from ..errors import DfkdError
from ..registry import Registry
from ..schedules import progress


@dataclass(frozen=True)
class Batch:
    """Inputs for one step, with what is known about them. Immutable: plug-ins and the loop
    return a new batch (:meth:`replace`, :meth:`weighted`, :meth:`with_extras`, :meth:`subset`)
    instead of changing the one they were given.

    Attributes:
        x: normalised images ``B×C×H×W``.
        labels: ground truth when the source has it (real data), else ``None``.
        weight: per-sample weights set by plug-ins (``None`` = all 1).
        teacher_logits: filled in by the loop once the teacher has seen ``x``.
        teacher_features: the teacher's penultimate features (the input of its last linear
            layer), filled in by the loop when a plug-in declares ``needs=("teacher_features",)``.
        extras: anything a source or plug-in wants to pass along (e.g. noise ``z``); read-only.
    """

    x: torch.Tensor
    labels: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    teacher_logits: torch.Tensor | None = None
    teacher_features: torch.Tensor | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.extras, MappingProxyType):
            object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def replace(self, **changes: Any) -> Batch:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def weighted(self, w: torch.Tensor) -> Batch:
        """A copy whose per-sample weights are multiplied by ``w``."""
        return self.replace(weight=w if self.weight is None else self.weight * w)

    def with_extras(self, **values: Any) -> Batch:
        """A copy with ``values`` added to :attr:`extras`."""
        return self.replace(extras={**self.extras, **values})

    def subset(self, index: torch.Tensor) -> Batch:
        """The samples at ``index`` (a boolean mask or integer indices)."""

        def pick(v: Any) -> Any:
            return (
                v[index] if isinstance(v, torch.Tensor) and v.shape[:1] == self.x.shape[:1] else v
            )

        return replace(
            self,
            x=self.x[index],
            labels=pick(self.labels),
            weight=pick(self.weight),
            teacher_logits=pick(self.teacher_logits),
            teacher_features=pick(self.teacher_features),
            extras={k: pick(v) for k, v in self.extras.items()},
        )

    @staticmethod
    def cat(batches: list[Batch]) -> Batch:
        """One batch of the samples of ``batches``, in order. A field missing from any part is
        dropped (weights: missing parts count as 1); extras are kept when every part has them."""
        if not batches:
            raise ValueError("Batch.cat needs at least one batch")
        if len(batches) == 1:
            return batches[0]

        def join(vals: list[Any]) -> torch.Tensor | None:
            return None if any(v is None for v in vals) else torch.cat(vals)

        weights = [b.weight for b in batches]
        weight = None
        if any(w is not None for w in weights):
            weight = torch.cat(
                [w if w is not None else torch.ones(len(b), device=b.x.device)
                 for w, b in zip(weights, batches, strict=True)]
            )  # fmt: skip
        extras = {}
        for k in batches[0].extras:
            vals = [b.extras.get(k) for b in batches]
            if all(isinstance(u, torch.Tensor) and u.shape[:1] == b.x.shape[:1]
                   for u, b in zip(vals, batches, strict=True)):  # fmt: skip
                extras[k] = torch.cat(vals)
        return Batch(
            x=torch.cat([b.x for b in batches]),
            labels=join([b.labels for b in batches]),
            weight=weight,
            teacher_logits=join([b.teacher_logits for b in batches]),
            teacher_features=join([b.teacher_features for b in batches]),
            extras=extras,
        )


@dataclass
class SourceEnv:
    """What a source or plug-in may use when it is set up.

    Attributes:
        teacher: the frozen teacher on the run's device; its forward runs under the run's
            precision (autocast), so a plug-in that probes it (a PGD attack) computes as the
            loop does.
        rounds, g_steps: the run's rounds and synthesis steps per round.
        teacher_features_dim: width of the teacher's penultimate features (set when a plug-in
            declares ``needs=("teacher_features",)``).
        replans: ``(at, rounds_before)`` per re-plan of a budgeted run. ``rounds`` and
            ``replans`` change when the run re-plans: a schedule over the run reads them when
            it needs them (:meth:`progress`), never a copy made at set-up.
        invert: ``invert(n, steps)`` → ``n`` images inverted from the teacher toward classes
            ``0, 1, …`` in turn (:func:`dfkd.engine.invert.inverted_probes`); set by the engine.
        to_model: the map from the sources' normalisation to the networks' (the student's
            inputs; ``teacher`` applies it itself). The identity unless an imported teacher's
            card names another normalisation.
    """

    fabric: Any
    data: Data
    teacher: nn.Module
    student: nn.Module
    batch_size: int
    seed: int
    rounds: int = 1
    g_steps: int = 1
    teacher_features_dim: int | None = None
    replans: list[tuple[int, int]] = field(default_factory=list)
    invert: Callable[[int, int], torch.Tensor] | None = None
    to_model: Callable[[torch.Tensor], torch.Tensor] | None = None

    def student_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The student's logits for ``x`` given in the sources' normalisation."""
        return self.student(x if self.to_model is None else self.to_model(x))

    def progress(self, rounds_done: float) -> float:
        """The share of the run's schedule that ``rounds_done`` rounds have run."""
        return progress(rounds_done, self.rounds, self.replans)


class Source:
    """Base class. Subclasses set ``synthesizes``, ``has_labels`` (and ``has_targets``) and
    implement what they need.

    ``draw()`` returns a differentiable synthetic batch and ``update(loss)`` steps the source's
    own parameters (synthesis phase); ``sample(n)`` returns a batch without gradient (distillation
    phase). ``state_dict`` must capture everything needed to resume identically, RNG included.
    Under spawned DDP a source is pickled into each worker before ``setup`` runs there: build
    generators, optimisers and other runtime state in ``setup``, not in ``__init__``.
    """

    synthesizes: bool = False
    has_labels: bool = False
    #: whether synthetic batches carry target classes (``batch.extras["targets"]``)
    has_targets: bool = False
    #: what the source's own synthesis terms need from the teacher's forward (as terms' needs)
    synth_needs: tuple[str, ...] = ()

    @property
    def made(self) -> bool:
        """Whether the source makes its images (synthesised, or drawn from image programs)
        instead of reading a dataset: what the run measures against the real test images."""
        return self.synthesizes

    def setup(self, env: SourceEnv) -> None:
        """Called once before the loop."""

    def draw(self) -> Batch:
        """A batch whose ``x`` carries gradient to the source's parameters."""
        raise DfkdError(f"source '{type(self).__name__}' does not synthesise; set g_steps: 0")

    def update(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` into the source's parameters and step them."""
        raise DfkdError(f"source '{type(self).__name__}' has nothing to optimise")

    def sample(self, batch_size: int) -> Batch:
        """A batch for the student, without gradient."""
        raise NotImplementedError

    def shared_state(self) -> dict[str, torch.Tensor]:
        """The learned tensors that stay identical on every DDP rank (a generator's weights);
        what a rank synthesises, draws and remembers is its own."""
        return {}

    def synth_terms(self, ctx: Any) -> dict[str, torch.Tensor]:
        """The source's own synthesis terms on this step (already weighted), added to the
        objective and logged like the configured terms (e.g. a contrastive term whose head and
        memory the source keeps)."""
        return {}

    def round_end(self, round_index: int) -> dict[str, float]:
        """Called after each round; returns values to log."""
        return {}

    def pool_images(self, n: int) -> torch.Tensor | None:
        """Up to ``n`` of the newest images of the source's data pool, drawing no random numbers
        (what the run measures synthesis by); ``None`` for a source without a pool."""
        return None

    def pool_histogram(self) -> torch.Tensor | None:
        """How many pooled images the teacher assigns to each class (``None``: not known)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


SOURCES: Registry[Callable[..., Source]] = Registry("sources")


def register_source(name: str, **tags: Any):
    """Decorator registering a source class or factory under ``name``."""
    return SOURCES.register(name, **tags)


def build_source(name: str, args: dict[str, Any]) -> Source:
    """Instantiate a registered source, checking ``args`` against its signature."""
    factory = SOURCES.get(name)
    return factory(**checked_args(factory, dict(args), f"source '{name}'"))


def mean_gradients(fabric: Any, params: Iterable[torch.Tensor]) -> None:
    """Replace each gradient by its mean over the DDP ranks, through Fabric (nothing on one
    process): what keeps a source's shared weights identical on every rank."""
    if getattr(fabric, "world_size", 1) <= 1:
        return
    for p in params:
        if p.grad is not None:
            p.grad = fabric.all_reduce(p.grad, reduce_op="mean")
