"""The batch a synthesis round keeps, chosen on the device."""

from __future__ import annotations

import math

import torch

from dfkd.sources.keep import KeepBest


def test_keep_best_against_a_naive_reference() -> None:
    g = torch.Generator().manual_seed(0)
    losses = [3.0, 1.5, 2.0, float("nan"), 1.5, 0.75, 0.875]  # exact in float32
    batches = [torch.randn(4, 2, generator=g) for _ in losses]
    extra = [torch.randn(4, 3, generator=g) for _ in losses]
    kept, last = KeepBest(), KeepBest(last=True)
    best_i, best_loss = None, math.inf
    for i, (loss, x, f) in enumerate(zip(losses, batches, extra, strict=True)):
        kept.offer(torch.tensor(loss), x, f)
        last.offer(torch.tensor(loss), x, f)
        if best_i is None or loss < best_loss:  # the host-side rule it replaces
            best_i, best_loss = i, loss
        assert kept.items is not None and torch.equal(kept.items[0], batches[best_i])
        assert torch.equal(kept.items[1], extra[best_i]) and float(kept.loss) == best_loss
        assert last.best is not None and torch.equal(last.best, x)


def test_keep_best_survives_its_checkpoint() -> None:
    kept = KeepBest()
    assert kept.best is None and math.isinf(float(kept.state()["best_loss"]))
    kept.offer(torch.tensor(2.0), torch.ones(2))
    state = kept.state()
    twin = KeepBest()
    twin.restore(state["best"], state["best_loss"], device=torch.device("cpu"))
    for k in (kept, twin):
        k.offer(torch.tensor(2.5), torch.zeros(2))
    assert torch.equal(kept.best, twin.best) and torch.equal(twin.best, torch.ones(2))
