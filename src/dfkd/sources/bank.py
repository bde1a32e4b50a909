"""A fixed-capacity memory bank of synthetic samples with seeded replay."""

from __future__ import annotations

from typing import Any

import torch


class MemoryBank:
    """Ring buffer of samples on the CPU; once full, the oldest are overwritten. Each sample's
    age is the number of batches added after it (0: the newest batch).

    Args:
        capacity: the most samples kept.
        max_age: replay only samples of at most this age (``None``: every sample kept).
    """

    def __init__(self, capacity: int, max_age: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"memory bank capacity must be ≥ 1, got {capacity}")
        if max_age is not None and max_age < 0:
            raise ValueError(f"memory bank max_age must be ≥ 0 or None, got {max_age}")
        self.capacity, self.max_age = capacity, max_age
        self.data: torch.Tensor | None = None
        self.born = torch.zeros(capacity, dtype=torch.long)
        self.size = 0
        self.head = 0
        self.adds = 0

    def __len__(self) -> int:
        return self.size

    def add(self, x: torch.Tensor) -> None:
        """Append a batch (detached, moved to the CPU)."""
        x = x.detach().to("cpu")
        if self.data is None:
            self.data = torch.empty((self.capacity, *x.shape[1:]), dtype=x.dtype)
        x = x[-self.capacity :]
        idx = (self.head + torch.arange(len(x))) % self.capacity
        self.data[idx] = x
        self.born[idx] = self.adds
        self.adds += 1
        self.head = int((self.head + len(x)) % self.capacity)
        self.size = min(self.capacity, self.size + len(x))

    def ages(self) -> torch.Tensor:
        """The age of every kept sample, in storage order."""
        return self.adds - 1 - self.born[: self.size]

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` samples drawn uniformly with replacement (among those young enough)."""
        if self.data is None or self.size == 0:
            raise RuntimeError("memory bank is empty: run synthesis (g_steps > 0) before sampling")
        if self.max_age is None:
            return self.data[torch.randint(0, self.size, (n,), generator=gen)]
        young = (self.ages() <= self.max_age).nonzero().squeeze(1)
        return self.data[young[torch.randint(0, len(young), (n,), generator=gen)]]

    def state_dict(self) -> dict[str, Any]:
        data = None if self.data is None else self.data[: self.size].clone()
        born = self.born[: self.size].clone()
        return {"data": data, "size": self.size, "head": self.head, "born": born,
                "adds": self.adds}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.head = int(state["size"]), int(state["head"])
        self.adds = int(state.get("adds", 0))
        self.born.zero_()
        if "born" in state:
            self.born[: self.size] = state["born"]
        self.data = None
        if state["data"] is not None:
            d = state["data"]
            self.data = torch.empty((self.capacity, *d.shape[1:]), dtype=d.dtype)
            self.data[: len(d)] = d


def pool_metrics(bank: MemoryBank) -> dict[str, float]:
    """A data pool's size and the mean age of its samples (in rounds), for the round's log."""
    ages = bank.ages()
    return {
        "pool_size": float(len(bank)),
        "pool_age": float(ages.float().mean()) if len(ages) else 0.0,
    }
