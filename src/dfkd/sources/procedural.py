"""Procedural images as a source: fresh images from natural-image priors alone (1/f noise, dead
leaves), for a teacher that comes with no data and no statistics."""

from __future__ import annotations

from typing import Any

import torch

from ..data.augment import shift_flip
from ..data.procedural import PROGRAMS, program_images
from ..errors import ConfigError
from ..evaluation.domains import from_pixels
from .base import Batch, Source, SourceEnv, register_source


@register_source("procedural")
class ProceduralImages(Source):
    """Draws every batch afresh from image programs (:mod:`dfkd.data.procedural`), in the
    dataset's shape and normalisation; unlabelled (the teacher labels them). Seeded and
    resumable; nothing is stored or read from disk.

    Args:
        programs: the programs, their images interleaved in equal shares (``noise``:
            ``1/f^α`` spectra; ``leaves``: dead leaves).
        alpha: the range of the spectral exponent α.
        leaves: the range of the number of leaves per image.
        shift, flip: random translation of up to ``shift`` pixels and horizontal flips.
    """

    def __init__(
        self, programs: tuple[str, ...] | list[str] = ("noise", "leaves"),
        alpha: tuple[float, float] | list[float] = (1.0, 3.0),
        leaves: tuple[int, int] | list[int] = (2, 12), shift: int = 0, flip: bool = False,
    ) -> None:  # fmt: skip
        unknown = [p for p in programs if p not in PROGRAMS]
        if not programs or unknown:
            raise ConfigError(
                f"source 'procedural': programs must be some of {sorted(PROGRAMS)}, got "
                f"{list(programs)}"
            )
        if len(alpha) != 2 or not 0 < alpha[0] <= alpha[1]:
            raise ConfigError(f"source 'procedural': alpha must be [low, high] > 0, got {alpha}")
        if len(leaves) != 2 or not 1 <= leaves[0] <= leaves[1]:
            raise ConfigError(f"source 'procedural': leaves must be [low, high] ≥ 1, got {leaves}")
        if shift < 0:
            raise ConfigError(f"source 'procedural': shift must be ≥ 0, got {shift}")
        self.programs = list(programs)
        self.options = {"noise": {"alpha": tuple(alpha)}, "leaves": {"leaves": tuple(leaves)}}
        self.shift, self.flip = int(shift), bool(flip)

    made = True  # no dataset is read: the run measures the images against the test split

    def setup(self, env: SourceEnv) -> None:
        self.shape = tuple(env.data.input_shape)
        self.norm = (env.data.mean, env.data.std)
        self.fill = env.data.bounds[0]
        rank = getattr(env.fabric, "global_rank", 0)
        self.seed = env.seed * 1000 + rank
        self.gen = torch.Generator().manual_seed(self.seed)
        self.fabric = env.fabric
        self._probe: torch.Tensor | None = None

    def images(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` fresh images in pixel space drawn from ``gen``."""
        return program_images(n, self.shape, gen, self.programs, self.options)

    def sample(self, batch_size: int) -> Batch:
        x = from_pixels(self.images(batch_size, self.gen), *self.norm)
        x = shift_flip(x, self.shift, self.flip, self.fill, self.gen)
        return Batch(x=self.fabric.to_device(x))

    def pool_images(self, n: int) -> torch.Tensor:
        """``n`` images from the programs, the same at every call (their own seed: the run's
        draws are untouched), as the probe's sample of what the source makes."""
        if self._probe is None or len(self._probe) != n:
            gen = torch.Generator().manual_seed(self.seed + 7_777_777)
            self._probe = from_pixels(self.images(n, gen), *self.norm)
        return self._probe

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
