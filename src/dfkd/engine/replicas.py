"""Whether the DDP ranks still hold the same learned weights (checked once, at the end of a run)."""

from __future__ import annotations

import hashlib
from typing import Any

import torch


def digest(tensors: dict[str, torch.Tensor]) -> int:
    """A 63-bit digest of the names and exact bytes of ``tensors``."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "little") >> 1


def replicas_identical(fabric: Any, groups: dict[str, dict[str, torch.Tensor]]) -> dict[str, bool]:
    """Per group of tensors (the student's parameters, the source's shared weights), whether
    every rank holds bit-identical values; a collective: every rank must call it."""
    local = torch.tensor([digest(g) for g in groups.values()], dtype=torch.long)
    every = fabric.all_gather(fabric.to_device(local)).reshape(-1, len(groups)).cpu()
    return {name: bool((every[:, i] == every[0, i]).all()) for i, name in enumerate(groups)}
