"""The data pool a synthesising source keeps and the student replays: its options, declared
once for every pool source (:class:`PoolOptions`, added to a source's own by
:func:`pool_options`), and what it knows of its images — each image's class by the teacher,
whether it hit the target it was made for, which images are admitted (:class:`DataPool`)."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from ..data.augment import MIXES, mix_pairs
from ..data.procedural import program_images
from ..errors import ConfigError
from ..evaluation.domains import from_pixels
from ..evaluation.metrics import class_balance, class_coverage
from .bank import REPLAY_TARGETS, MemoryBank, pool_metrics, replay
from .base import Batch, SourceEnv

#: which images of a round join the pool: all of them, or those the teacher assigns to the
#: target they were made for (images of a source without targets are always all admitted)
ADMIT = ("all", "hit")


@dataclass(frozen=True)
class PoolOptions:
    """The options of a source's data pool, the same for every pool source (each source sets
    its own defaults).

    Args:
        bank: data-pool capacity in samples (0, where a source allows it: no pool, the student
            is taught on fresh samples).
        replay_shift, replay_flip: random translation (up to this many pixels, filled with the
            data's lowest value) and horizontal flips of the images the student replays.
        replay_targets: ``"fresh"`` (the teacher labels every replayed view) or ``"cached"``
            (its logits on each pooled image, computed once when the image joins the pool, are
            the targets of every replayed view: one teacher forward per pooled image instead
            of one per replay).
        admit: ``"all"`` (every image a round pools joins) or ``"hit"`` (only those the teacher
            assigns to their target; a source without targets admits all).
        replay_procedural: the share of each replayed batch drawn fresh from the image programs
            (1/f noise, dead leaves; :mod:`dfkd.data.procedural`) instead of the pool.
        replay_mix: ``"none"`` or ``"mixup"``: each replayed image blended with another of its
            batch (:func:`~dfkd.data.augment.mix_pairs`) and taught the teacher's answer on
            the blend (needs ``replay_targets: fresh``).
    """

    bank: int = 8192
    replay_shift: int = 2
    replay_flip: bool = False
    replay_targets: str = "fresh"
    admit: str = "all"
    replay_procedural: float = 0.0
    replay_mix: str = "none"

    def check(self, source: str, optional: bool = False) -> PoolOptions:
        """These options, when valid for ``source`` (``optional``: it may run without a pool,
        ``bank: 0``); a one-line :class:`ConfigError` naming the option otherwise."""
        where = f"source '{source}'"
        if self.bank < (0 if optional else 1):
            raise ConfigError(f"{where}: bank must be ≥ {0 if optional else 1}, got {self.bank}")
        if self.replay_shift < 0:
            raise ConfigError(f"{where}: replay_shift must be ≥ 0, got {self.replay_shift}")
        if self.replay_targets not in REPLAY_TARGETS:
            raise ConfigError(f"{where}: replay_targets must be one of {REPLAY_TARGETS}, "
                              f"got {self.replay_targets!r}")  # fmt: skip
        if self.admit not in ADMIT:
            raise ConfigError(f"{where}: admit must be one of {ADMIT}, got {self.admit!r}")
        if not 0 <= self.replay_procedural < 1:
            raise ConfigError(f"{where}: replay_procedural must be in [0, 1), "
                              f"got {self.replay_procedural}")  # fmt: skip
        if self.replay_mix not in MIXES:
            raise ConfigError(f"{where}: replay_mix must be one of {MIXES}, "
                              f"got {self.replay_mix!r}")  # fmt: skip
        if self.replay_mix != "none" and self.replay_targets != "fresh":
            raise ConfigError(f"{where}: replay_mix needs replay_targets: fresh (the teacher "
                              "labels each mixed image)")  # fmt: skip
        replays = (self.replay_shift, self.replay_flip, self.replay_targets != "fresh",
                   self.admit != "all", self.replay_procedural,
                   self.replay_mix != "none")  # fmt: skip
        if not self.bank and any(replays):
            raise ConfigError(f"{where}: replay_* and admit apply to pooled images; set bank")
        return self


SourceT = TypeVar("SourceT", bound=type)


def pool_options(**defaults: Any) -> Callable[[SourceT], SourceT]:
    """Class decorator: the source's ``__init__(…, *, pool: PoolOptions)`` takes the pool options
    as options of its own, flat (``bank``, ``replay_shift``, …, with ``defaults``), so that a
    config, its checks and ``dfkd describe`` see one list; they reach ``__init__`` as ``pool``."""
    names = [f.name for f in dataclasses.fields(PoolOptions)]
    hints = typing.get_type_hints(PoolOptions)

    def decorate(cls: SourceT) -> SourceT:
        init = cls.__init__
        own = inspect.signature(init)
        extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=hints[n],
                                   default=defaults.get(n, getattr(PoolOptions, n)))
                 for n in names]  # fmt: skip
        params = [p for p in own.parameters.values() if p.name != "pool"] + extra

        def __init__(self: Any, *args: Any, pool: PoolOptions | None = None, **kw: Any) -> None:
            given = {n: kw.pop(n) for n in names if n in kw}
            init(self, *args, pool=pool or PoolOptions(**{**defaults, **given}), **kw)

        __init__.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        __init__.__annotations__ = {**typing.get_type_hints(init), **hints}
        __init__.__annotations__.pop("pool", None)
        __init__.__doc__ = inspect.getdoc(PoolOptions)
        cls.__init__ = __init__  # type: ignore[misc]
        return cls

    return decorate


def hits(classes: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Whether each image's class is its target (all ``True`` without targets)."""
    if targets is None:
        return torch.ones_like(classes, dtype=torch.bool)
    return classes == targets.to(classes.device)


def add_to_pool(
    bank: MemoryBank,
    x: torch.Tensor,
    classify: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor | None,
    admit: str = "all",
) -> dict[str, torch.Tensor]:
    """Add a round's images to ``bank`` with their classes (``classify``: the teacher's argmax),
    only those that hit their target when ``admit`` is ``"hit"``. Returns the round's log as
    0-d tensors, read back once at the round's end (a step reads nothing): the share of images
    that hit their target (when there are targets) and the share admitted."""
    with torch.no_grad():
        classes = classify(x.detach())
    hit = hits(classes, targets)
    if admit == "hit":
        bank.add(x[hit], classes[hit])
        admitted = hit.float().mean()
    else:
        bank.add(x, classes)
        admitted = torch.ones(())
    log = {"pool_admitted": admitted}
    if targets is not None:
        log["synth_hit_rate"] = hit.float().mean()
    return log


def read_log(log: dict[str, torch.Tensor]) -> dict[str, float]:
    """A round's pool log as numbers (at the round's end)."""
    return {k: float(v) for k, v in log.items()}


def class_pool_metrics(bank: MemoryBank, num_classes: int) -> dict[str, float]:
    """A pool's class coverage (share of classes with at least a quarter of a fair share) and
    balance (normalised entropy) by the classes it keeps."""
    hist = bank.class_histogram(num_classes).double()
    if hist.sum() == 0:
        return {}
    shares = (hist / hist.sum()).tolist()
    covered = num_classes - len(class_coverage(shares))
    return {"pool_coverage": covered / num_classes, "pool_balance": class_balance(shares)}


class DataPool:
    """A source's pool at run time: a :class:`~dfkd.sources.bank.MemoryBank` of its images
    (labelled by the teacher once when ``replay_targets`` is ``cached``), each image's class,
    the admission rule, and replay (shifted, flipped) with the source's random stream ``gen``."""

    def __init__(self, options: PoolOptions, env: SourceEnv, gen: torch.Generator,
                 fill: Any) -> None:  # fmt: skip
        self.options, self.gen, self.fill = options, gen, fill
        self.teacher, self.num_classes = env.teacher, env.data.num_classes
        self.to_device = env.fabric.to_device
        self.shape, self.norm = tuple(env.data.input_shape), (env.data.mean, env.data.std)
        label = env.teacher if options.replay_targets == "cached" else None
        self.bank = MemoryBank(options.bank, label)
        self._round_log: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.bank)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's class of each image."""
        return self.teacher(x).argmax(1)

    def add(self, x: torch.Tensor) -> None:
        """Pool images without their classes (a source that pools every step: no teacher
        forward for it)."""
        self.bank.add(x)

    def admit(self, x: torch.Tensor, targets: torch.Tensor | None = None) -> None:
        """Pool a round's images with their classes, by the admission rule."""
        self._round_log = add_to_pool(self.bank, x, self.classify, targets, self.options.admit)

    def replay(self, n: int) -> Batch:
        """``n`` images for the student: pooled ones, augmented (and mixed) as the options say,
        and the ``replay_procedural`` share of them fresh from the image programs."""
        o = self.options
        fresh = min(round(n * o.replay_procedural), n - 1)
        pooled = replay(self.bank, n - fresh, self.gen, o.replay_shift, o.replay_flip,
                        self.fill, self.to_device)  # fmt: skip
        if o.replay_mix != "none":
            pooled = pooled.replace(x=mix_pairs(pooled.x, o.replay_mix, self.gen))
        if not fresh:
            return pooled
        x = from_pixels(program_images(fresh, self.shape, self.gen), *self.norm)
        return Batch.cat([pooled, Batch(x=self.to_device(x))])

    def log(self) -> dict[str, float]:
        """The pool's size, age, class coverage and balance, and the last round's hit rate and
        admitted share (each reported once)."""
        log, self._round_log = self._round_log, {}
        return {**pool_metrics(self.bank), **class_pool_metrics(self.bank, self.num_classes),
                **read_log(log)}  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return self.bank.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bank.load_state_dict(state)


class PooledSource:
    """What a source with a data pool (``self.pool``) tells the run of it: the newest images
    and the class histogram the synthesis probe reads."""

    pool: DataPool

    def pool_images(self, n: int) -> torch.Tensor | None:
        return self.pool.bank.newest(n) if len(self.pool) else None

    def pool_histogram(self) -> torch.Tensor | None:
        return self.pool.bank.class_histogram(self.pool.num_classes)
