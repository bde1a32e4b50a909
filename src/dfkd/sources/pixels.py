"""Pixel inversion: a batch of images is the parameter (DeepInversion, statistical and spectral
feature matching). Finished batches go to the data pool that distillation replays."""

from __future__ import annotations

from typing import Any

import torch

from ..data.procedural import program_images
from ..errors import ConfigError
from ..evaluation.domains import from_pixels
from .base import Batch, Source, SourceEnv, register_source
from .pool import DataPool, PooledSource, PoolOptions, pool_options


@register_source("pixels")
@pool_options(replay_shift=0)
class PixelInversion(PooledSource, Source):
    """Optimises a fresh batch of pixels for the ``g_steps`` of each round; at the end of the
    round the batch (clipped to the data range) joins the data pool the student replays (the
    pool options).

    Args:
        lr: Adam learning rate on the pixels.
        betas: Adam betas (DeepInversion uses ``(0.5, 0.9)``).
        jitter: random circular shift of up to this many pixels at each step (0 = off).
        flip: random horizontal flip at each step.
        synth_batch_size: images optimised per round (default: the run's batch size).
        init_std: standard deviation of the initial noise (in normalised units).
        init: initial pixels — ``normal`` (Gaussian noise of ``init_std`` in normalised units),
            ``uniform`` (uniform noise over the pixel range ``[0, 1]``, normalised) or
            ``procedural`` (1/f noise and dead leaves, :mod:`dfkd.data.procedural`).
        targets: give each image of the batch a target class (``0, 1, …`` in turn) in
            ``batch.extras["targets"]``, for the ``class_target`` term (DeepInversion's original
            form; the audit's inverted probes).
    """

    synthesizes = True

    def __init__(
        self,
        lr: float = 0.1,
        betas: tuple[float, float] = (0.5, 0.9),
        jitter: int = 1,
        flip: bool = False,
        synth_batch_size: int | None = None,
        init_std: float = 1.0,
        init: str = "normal",
        targets: bool = False,
        *,
        pool: PoolOptions,
    ) -> None:
        if init not in ("normal", "uniform", "procedural"):
            raise ConfigError(
                f"source 'pixels': init must be 'normal', 'uniform' or 'procedural', got {init!r}"
            )
        self.init, self.has_targets = init, bool(targets)
        self.lr, self.betas, self.jitter, self.flip = lr, tuple(betas), jitter, flip
        self.synth_batch_size, self.init_std = synth_batch_size, init_std
        self.pool_options = pool.check("pixels")

    def setup(self, env: SourceEnv) -> None:
        rank = getattr(env.fabric, "global_rank", 0)
        self.gen = torch.Generator().manual_seed(env.seed * 1000 + 29 + rank)
        self.fabric = env.fabric
        self.shape = (self.synth_batch_size or env.batch_size, *env.data.input_shape)
        low, high = env.data.bounds
        self.low, self.high = env.fabric.to_device((low, high))
        self.pool = DataPool(self.pool_options, env, self.gen, self.low)
        self.norm = (env.data.mean, env.data.std)
        self.pixels: torch.Tensor | None = None
        self.steps_on_batch = 0
        n = self.shape[0]
        self.targets = env.fabric.to_device(torch.arange(n) % env.data.num_classes)

    def _fresh(self) -> None:
        if self.init == "uniform":
            low, high = self.low.cpu(), self.high.cpu()
            x = low + torch.rand(self.shape, generator=self.gen) * (high - low)
        elif self.init == "procedural":
            x = from_pixels(program_images(self.shape[0], self.shape[1:], self.gen), *self.norm)
        else:
            x = torch.randn(self.shape, generator=self.gen) * self.init_std
        self.pixels = self.fabric.to_device(x).requires_grad_(True)
        self.opt = self._optimizer()
        self.steps_on_batch = 0

    def _optimizer(self) -> torch.optim.Optimizer:
        """Adam over the pixels, stepped through Fabric (fp16 gradients unscaled)."""
        opt = torch.optim.Adam([self.pixels], lr=self.lr, betas=self.betas)
        return self.fabric.setup_optimizers(opt)

    def draw(self) -> Batch:
        if self.pixels is None:
            self._fresh()
        x = self.pixels
        if self.jitter:
            dx, dy = torch.randint(-self.jitter, self.jitter + 1, (2,), generator=self.gen).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        if self.flip and bool(torch.rand(1, generator=self.gen) < 0.5):
            x = x.flip(3)
        return Batch(x=x, extras={"targets": self.targets} if self.has_targets else {})

    def update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.fabric.backward(loss)
        self.opt.step()
        with torch.no_grad():
            self.pixels.copy_(torch.maximum(torch.minimum(self.pixels, self.high), self.low))
        self.steps_on_batch += 1

    def _finish(self) -> None:
        """Move the batch being optimised into the pool (synthesis for this round is over)."""
        if self.pixels is not None and self.steps_on_batch > 0:
            targets = self.targets if self.has_targets else None
            self.pool.admit(self.pixels.detach(), targets)
            self.pixels = None

    def round_end(self, round_index: int) -> dict[str, float]:
        self._finish()
        return self.pool.log()

    def sample(self, batch_size: int) -> Batch:
        self._finish()
        return self.pool.replay(batch_size)

    def state_dict(self) -> dict[str, Any]:
        return {
            "gen": self.gen.get_state(),
            "bank": self.pool.state_dict(),
            "pixels": None if self.pixels is None else self.pixels.detach(),
            "opt": None if self.pixels is None else self.opt.state_dict(),
            "steps_on_batch": self.steps_on_batch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.pool.load_state_dict(state["bank"])
        self.steps_on_batch = int(state["steps_on_batch"])
        self.pixels = None
        if state["pixels"] is not None:
            self.pixels = self.fabric.to_device(state["pixels"].clone()).requires_grad_(True)
            self.opt = self._optimizer()
            self.opt.load_state_dict(state["opt"])
