"""What a synthesising source knows of the classes of its data pool: each image's class by the
teacher, whether it hit the target it was made for, which images are admitted, and which
classes the next round should make (the pool's deficit)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import ConfigError
from ..evaluation.metrics import class_balance, class_coverage
from .bank import MemoryBank, pool_metrics

#: which images of a round join the pool: all of them, or those the teacher assigns to the
#: target they were made for (images of a source without targets are always all admitted)
ADMIT = ("all", "hit")


def admit_option(value: str, source: str) -> str:
    """``value`` when it is one of :data:`ADMIT`; a :class:`ConfigError` otherwise."""
    if value not in ADMIT:
        raise ConfigError(f"source '{source}': admit must be one of {ADMIT}, got {value!r}")
    return value


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


class PoolReadout:
    """What a source with a data pool (``self.bank``, ``self.num_classes``, ``self.teacher``,
    and the log of its last :func:`add_to_pool` in ``self._round_log``) tells of it: each
    image's class, the round's log, and the newest images and class histogram the run's
    synthesis probe reads."""

    bank: MemoryBank
    num_classes: int
    teacher: Callable[[torch.Tensor], torch.Tensor]
    _round_log: dict[str, torch.Tensor]

    def _classify(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's class of each image."""
        return self.teacher(x).argmax(1)

    def pool_log(self) -> dict[str, float]:
        """The pool's size, age, class coverage and balance, and the last round's hit rate and
        admitted share (each reported once)."""
        log, self._round_log = self._round_log, {}
        return {**pool_metrics(self.bank), **class_pool_metrics(self.bank, self.num_classes),
                **read_log(log)}  # fmt: skip

    def pool_images(self, n: int) -> torch.Tensor | None:
        return self.bank.newest(n) if len(self.bank) else None

    def pool_histogram(self) -> torch.Tensor | None:
        return self.bank.class_histogram(self.num_classes)
