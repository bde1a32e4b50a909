"""A fixed-capacity memory bank of synthetic samples with seeded replay."""

from __future__ import annotations

from typing import Any

import torch


class MemoryBank:
    """Ring buffer of samples on the CPU; once full, the oldest are overwritten.

    Args:
        capacity: the most samples kept.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"memory bank capacity must be ≥ 1, got {capacity}")
        self.capacity = capacity
        self.data: torch.Tensor | None = None
        self.size = 0
        self.head = 0

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
        self.head = int((self.head + len(x)) % self.capacity)
        self.size = min(self.capacity, self.size + len(x))

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` samples drawn uniformly with replacement."""
        if self.data is None or self.size == 0:
            raise RuntimeError("memory bank is empty: run synthesis (g_steps > 0) before sampling")
        return self.data[torch.randint(0, self.size, (n,), generator=gen)]

    def state_dict(self) -> dict[str, Any]:
        data = None if self.data is None else self.data[: self.size].clone()
        return {"data": data, "size": self.size, "head": self.head}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.head = int(state["size"]), int(state["head"])
        self.data = None
        if state["data"] is not None:
            d = state["data"]
            self.data = torch.empty((self.capacity, *d.shape[1:]), dtype=d.dtype)
            self.data[: len(d)] = d
