"""The batch a round keeps for the data pool: the one of lowest synthesis loss (or the last),
chosen on the device, so that no synthesis step waits for the loss to reach the host."""

from __future__ import annotations

import torch


class KeepBest:
    """The tensors offered with the lowest loss so far (``last=True``: the last ones offered).

    ``items`` is ``None`` until something is offered; a loss of NaN never replaces a kept one.
    """

    def __init__(self, last: bool = False) -> None:
        self.last = last
        self.items: tuple[torch.Tensor, ...] | None = None
        self.loss: torch.Tensor | None = None

    def offer(self, loss: torch.Tensor, *items: torch.Tensor) -> None:
        """Keep ``items`` if ``loss`` (a scalar) is lower than the kept loss (no host sync)."""
        loss = loss.detach().float()
        new = tuple(i.detach() for i in items)
        if self.loss is None or self.last:
            self.items, self.loss = new, loss
            return
        better = loss < self.loss
        self.items = tuple(torch.where(better, n, o) for n, o in zip(new, self.items, strict=True))
        self.loss = torch.where(better, loss, self.loss)

    @property
    def best(self) -> torch.Tensor | None:
        """The first kept tensor (the batch)."""
        return None if self.items is None else self.items[0]

    def state(self) -> dict[str, torch.Tensor | None]:
        """What a mid-round checkpoint keeps: the batch and its loss."""
        loss = torch.tensor(float("inf")) if self.loss is None else self.loss.detach().cpu()
        return {"best": self.best, "best_loss": loss}

    def restore(self, best: torch.Tensor | None, loss: torch.Tensor | float | None,
                device: torch.device) -> None:  # fmt: skip
        """Keep a checkpoint's batch and loss again."""
        if best is None:
            self.items, self.loss = None, None
            return
        self.items = (best,)
        self.loss = torch.as_tensor(loss, dtype=torch.float32, device=device)
