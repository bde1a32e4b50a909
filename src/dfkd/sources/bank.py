"""A fixed-capacity memory bank of synthetic samples with seeded replay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..data.augment import shift_flip
from .base import Batch

#: what the student is taught on a replayed sample: the teacher's logits on the replayed
#: (augmented) view, computed at every replay, or those on the pooled image, kept with it
REPLAY_TARGETS = ("fresh", "cached")


class MemoryBank:
    """Ring buffer of samples on the CPU; once full, the oldest are overwritten. Each sample's
    age is the number of batches added after it (0: the newest batch).

    Each sample may carry its class (the teacher's prediction when it joined, ``-1`` when not
    known), from which :meth:`class_histogram` counts what the pool holds.

    Args:
        capacity: the most samples kept.
        label: when given, each added batch's labels (the teacher's logits) are computed once
            and kept beside it; :meth:`draw` returns them.
    """

    def __init__(self, capacity: int,
                 label: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:  # fmt: skip
        if capacity < 1:
            raise ValueError(f"memory bank capacity must be ≥ 1, got {capacity}")
        self.capacity = capacity
        self.label = label
        self.data: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.born = torch.zeros(capacity, dtype=torch.long)
        self.classes = torch.full((capacity,), -1, dtype=torch.long)
        self.size = 0
        self.head = 0
        self.adds = 0

    def __len__(self) -> int:
        return self.size

    def add(self, x: torch.Tensor, classes: torch.Tensor | None = None) -> None:
        """Append a batch (detached, moved to the CPU), with its labels when the bank has a
        ``label`` and each sample's class when ``classes`` is given."""
        x = x.detach()[-self.capacity :]
        if len(x) == 0:  # e.g. no image of the round was admitted
            return
        if self.label is not None:
            with torch.no_grad():
                logits = self.label(x).detach().float().to("cpu")
            if self.logits is None:
                self.logits = torch.empty((self.capacity, *logits.shape[1:]))
        x = x.to("cpu")
        if self.data is None:
            self.data = torch.empty((self.capacity, *x.shape[1:]), dtype=x.dtype)
        idx = (self.head + torch.arange(len(x))) % self.capacity
        self.data[idx] = x
        if self.logits is not None:
            self.logits[idx] = logits
        self.born[idx] = self.adds
        self.classes[idx] = -1 if classes is None else classes[-self.capacity :].to("cpu")
        self.adds += 1
        self.head = int((self.head + len(x)) % self.capacity)
        self.size = min(self.capacity, self.size + len(x))

    def class_histogram(self, num_classes: int) -> torch.Tensor:
        """How many kept samples of known class fall in each of ``num_classes`` classes."""
        known = self.classes[: self.size]
        known = known[known >= 0]
        return torch.bincount(known, minlength=num_classes)[:num_classes]

    def newest(self, n: int) -> torch.Tensor:
        """The ``n`` most recently added samples (fewer when the bank holds fewer), drawing no
        random numbers (what a measurement of the pool looks at)."""
        if self.data is None or self.size == 0:
            return torch.empty(0)
        n = min(n, self.size)
        idx = (self.head - 1 - torch.arange(n)) % self.capacity
        return self.data[idx]

    def ages(self) -> torch.Tensor:
        """The age of every kept sample, in storage order."""
        return self.adds - 1 - self.born[: self.size]

    def _index(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """Storage indices of ``n`` samples drawn uniformly with replacement."""
        if self.data is None or self.size == 0:
            raise RuntimeError("memory bank is empty: run synthesis (g_steps > 0) before sampling")
        return torch.randint(0, self.size, (n,), generator=gen)

    def draw(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` samples (see :meth:`sample`) and their kept labels (``None`` without
        ``label``)."""
        idx = self._index(n, gen)
        assert self.data is not None
        return self.data[idx], None if self.logits is None else self.logits[idx]

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` samples drawn uniformly with replacement."""
        return self.draw(n, gen)[0]

    def state_dict(self) -> dict[str, Any]:
        data = None if self.data is None else self.data[: self.size].clone()
        born = self.born[: self.size].clone()
        logits = None if self.logits is None else self.logits[: self.size].clone()
        return {"data": data, "size": self.size, "head": self.head, "born": born,
                "adds": self.adds, "logits": logits,
                "classes": self.classes[: self.size].clone()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.head = int(state["size"]), int(state["head"])
        self.adds = int(state.get("adds", 0))
        self.born.zero_()
        if "born" in state:
            self.born[: self.size] = state["born"]
        self.classes.fill_(-1)
        if state.get("classes") is not None:  # absent in checkpoints of earlier versions
            self.classes[: self.size] = state["classes"]
        self.data = None
        if state["data"] is not None:
            d = state["data"]
            self.data = torch.empty((self.capacity, *d.shape[1:]), dtype=d.dtype)
            self.data[: len(d)] = d
        self.logits = None
        if state.get("logits") is not None:
            t = state["logits"]
            self.logits = torch.empty((self.capacity, *t.shape[1:]), dtype=t.dtype)
            self.logits[: len(t)] = t


def pool_metrics(bank: MemoryBank) -> dict[str, float]:
    """A data pool's size and the mean age of its samples (in rounds), for the round's log."""
    ages = bank.ages()
    return {
        "pool_size": float(len(bank)),
        "pool_age": float(ages.float().mean()) if len(ages) else 0.0,
    }


def replay(bank: MemoryBank, n: int, gen: torch.Generator, shift: int, flip: bool,
           fill: torch.Tensor, to_device: Callable[[Any], Any]) -> Batch:  # fmt: skip
    """A batch of ``n`` pooled samples, shifted/flipped, on the device; it carries the kept
    teacher logits of the pooled images when the bank labels what it keeps (the loop then
    does not run the teacher on it)."""
    x, logits = bank.draw(n, gen)
    x = to_device(shift_flip(x, shift, flip, fill, gen))
    return Batch(x=x, teacher_logits=None if logits is None else to_device(logits))
