"""Real data as a source: the labelled training set (classical KD), or an unlabelled substitute
dataset from another domain (sampling-based data-free KD)."""

from __future__ import annotations

from typing import Any

import torch

from ..config import parse_spec
from ..data import DATASETS
from ..data.augment import shift_flip
from ..errors import ConfigError
from ..evaluation.domains import load_ood_domain
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

    def images(self, env: SourceEnv) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The split's images and labels (``None``: unlabelled)."""
        if self.split == "train":
            return env.data.x_train, env.data.y_train
        return env.data.x_test, env.data.y_test

    def setup(self, env: SourceEnv) -> None:
        self.x, self.y = self.images(env)
        self.fill = env.data.bounds[0]
        rank = getattr(env.fabric, "global_rank", 0)
        self.gen = torch.Generator().manual_seed(env.seed * 1000 + rank)
        self.fabric = env.fabric

    def sample(self, batch_size: int) -> Batch:
        parts = []
        need = batch_size
        while need > 0:
            if self.perm is None or self.pos >= len(self.perm):
                self.perm = torch.randperm(len(self.x), generator=self.gen)
                self.pos = 0
            take = self.perm[self.pos : self.pos + need]
            self.pos += len(take)
            need -= len(take)
            parts.append(take)
        idx = torch.cat(parts)
        x = shift_flip(self.x[idx], self.shift, self.flip, self.fill, self.gen)
        if self.y is None:
            return Batch(x=self.fabric.to_device(x))
        x, y = self.fabric.to_device((x, self.y[idx]))
        return Batch(x=x, labels=y)

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.perm = state["perm"]
        self.pos = int(state["pos"])


@register_source("substitute")
class SubstituteData(RealData):
    """Unlabelled images of another dataset, brought into the teacher's input space (channels,
    size, normalisation): the substitute data of sampling-based data-free KD. The student sees
    only the images; their own labels are never used.

    Args:
        dataset: ``NAME[:fit=pad|stretch,root=DIR]`` — a registered dataset other than the one
            the teacher was trained on (``dfkd list datasets``).
        split, shift, flip: as for ``real``.
    """

    has_labels = False

    def __init__(
        self, dataset: str | None = None, split: str = "train", shift: int = 0, flip: bool = False
    ) -> None:
        super().__init__(split, shift, flip)
        if not dataset:
            raise ConfigError(
                "source 'substitute' needs a dataset: --substitute NAME "
                "(or --set source.args.dataset=NAME; see dfkd list datasets)"
            )
        name, _ = parse_spec(dataset, "substitute dataset")
        DATASETS.get(name)  # an unknown name fails here, before any work
        self.dataset = dataset

    def images(self, env: SourceEnv) -> tuple[torch.Tensor, torch.Tensor | None]:
        domain = load_ood_domain(self.dataset, env.data, "substitute dataset")
        return (domain.x_train if self.split == "train" else domain.x_test), None
