"""Real labelled data as a source: what classical KD distils on."""

from __future__ import annotations

from typing import Any

import torch

from ..augment import shift_flip
from ..errors import ConfigError
from .base import Batch, Source, SourceEnv, register_source


@register_source("real")
class RealData(Source):
    """Samples mini-batches from a dataset split in shuffled epochs (seeded; resumable).

    Args:
        split: ``"train"`` (default) or ``"test"``.
        shift: random translation of up to this many pixels (0 = none).
        flip: random horizontal flips.
    """

    has_labels = True

    def __init__(self, split: str = "train", shift: int = 0, flip: bool = False) -> None:
        if split not in ("train", "test"):
            raise ConfigError(f"source 'real': split must be 'train' or 'test', got '{split}'")
        if shift < 0:
            raise ConfigError(f"source 'real': shift must be ≥ 0, got {shift}")
        self.split = split
        self.shift = int(shift)
        self.flip = bool(flip)
        self.perm: torch.Tensor | None = None
        self.pos = 0

    def setup(self, env: SourceEnv) -> None:
        self.x = env.data.x_train if self.split == "train" else env.data.x_test
        self.y = env.data.y_train if self.split == "train" else env.data.y_test
        self.fill = env.data.bounds[0]
        rank = getattr(env.fabric, "global_rank", 0)
        self.gen = torch.Generator().manual_seed(env.seed * 1000 + rank)
        self.fabric = env.fabric

    def sample(self, batch_size: int) -> Batch:
        parts = []
        need = batch_size
        while need > 0:
            if self.perm is None or self.pos >= len(self.perm):
                self.perm = torch.randperm(len(self.y), generator=self.gen)
                self.pos = 0
            take = self.perm[self.pos : self.pos + need]
            self.pos += len(take)
            need -= len(take)
            parts.append(take)
        idx = torch.cat(parts)
        x = shift_flip(self.x[idx], self.shift, self.flip, self.fill, self.gen)
        x, y = self.fabric.to_device((x, self.y[idx]))
        return Batch(x=x, labels=y)

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.perm = state["perm"]
        self.pos = int(state["pos"])
