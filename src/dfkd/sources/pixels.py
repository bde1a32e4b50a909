"""Pixel inversion: a batch of images is the parameter (DeepInversion, statistical and spectral
feature matching). Finished batches go to a memory bank that distillation samples from."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from .bank import MemoryBank, replay, replay_mix_option, replay_targets_option
from .base import Batch, Source, SourceEnv, register_source
from .pool import PoolReadout, add_to_pool, class_pool_metrics, read_log


@register_source("pixels")
class PixelInversion(PoolReadout, Source):
    """Optimises a fresh batch of pixels for the ``g_steps`` of each round; at the end of the
    round the batch (clipped to the data range) joins a memory bank.

    Args:
        lr: Adam learning rate on the pixels.
        betas: Adam betas (DeepInversion uses ``(0.5, 0.9)``).
        jitter: random circular shift of up to this many pixels at each step (0 = off).
        flip: random horizontal flip at each step.
        bank: memory-bank capacity in samples.
        synth_batch_size: images optimised per round (default: the run's batch size).
        init_std: standard deviation of the initial noise (in normalised units).
        replay_shift: random translation (up to this many pixels, black fill) of the images the
            student replays from the bank; 0 = none. The teacher labels the augmented image.
        replay_flip: random horizontal flips of the replayed images.
        replay_targets: ``"fresh"`` (the teacher labels every replayed view) or ``"cached"``
            (its logits on each banked image, computed once when the batch joins the bank, are
            the targets of every replay).
        replay_mix: mixup α of the replayed images (each mixed with a random partner of its
            batch, the larger share its own; the teacher labels each mixture; 0: off; needs
            ``replay_targets: fresh``).
        init: initial pixels — ``normal`` (Gaussian noise of ``init_std`` in normalised units)
            or ``uniform`` (uniform noise over the pixel range ``[0, 1]``, normalised).
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
        bank: int = 8192,
        synth_batch_size: int | None = None,
        init_std: float = 1.0,
        replay_shift: int = 0,
        replay_flip: bool = False,
        init: str = "normal",
        targets: bool = False,
        replay_targets: str = "fresh",
        replay_mix: float = 0.0,
    ) -> None:
        if replay_shift < 0:
            raise ConfigError(f"source 'pixels': replay_shift must be ≥ 0, got {replay_shift}")
        if init not in ("normal", "uniform"):
            raise ConfigError(f"source 'pixels': init must be 'normal' or 'uniform', got {init!r}")
        self.init, self.has_targets = init, bool(targets)
        self.lr, self.betas, self.jitter, self.flip = lr, tuple(betas), jitter, flip
        self.bank_capacity, self.synth_batch_size, self.init_std = bank, synth_batch_size, init_std
        self.replay_shift, self.replay_flip = int(replay_shift), bool(replay_flip)
        self.replay_targets = replay_targets_option(replay_targets, "pixels")
        self.replay_mix = replay_mix_option(replay_mix, replay_targets, "pixels")

    def setup(self, env: SourceEnv) -> None:
        rank = getattr(env.fabric, "global_rank", 0)
        self.gen = torch.Generator().manual_seed(env.seed * 1000 + 29 + rank)
        self.fabric = env.fabric
        self.shape = (self.synth_batch_size or env.batch_size, *env.data.input_shape)
        low, high = env.data.bounds
        self.low, self.high = env.fabric.to_device((low, high))
        label = env.teacher if self.replay_targets == "cached" else None
        self.bank = MemoryBank(self.bank_capacity, label=label)
        self.teacher, self.num_classes = env.teacher, env.data.num_classes
        self._round_log: dict[str, torch.Tensor] = {}
        self.pixels: torch.Tensor | None = None
        self.steps_on_batch = 0
        n = self.shape[0]
        self.targets = env.fabric.to_device(torch.arange(n) % env.data.num_classes)

    def _fresh(self) -> None:
        if self.init == "uniform":
            low, high = self.low.cpu(), self.high.cpu()
            x = low + torch.rand(self.shape, generator=self.gen) * (high - low)
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
        """Move the batch being optimised into the bank (synthesis for this round is over)."""
        if self.pixels is not None and self.steps_on_batch > 0:
            targets = self.targets if self.has_targets else None
            self._round_log = add_to_pool(self.bank, self.pixels.detach(), self._classify,
                                          targets)  # fmt: skip
            self.pixels = None

    def round_end(self, round_index: int) -> dict[str, float]:
        self._finish()
        log, self._round_log = self._round_log, {}
        return {"bank_size": float(len(self.bank)),
                **class_pool_metrics(self.bank, self.num_classes), **read_log(log)}  # fmt: skip

    def sample(self, batch_size: int) -> Batch:
        self._finish()
        return replay(self.bank, batch_size, self.gen, self.replay_shift, self.replay_flip,
                      self.low, self.fabric.to_device, self.replay_mix)  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {
            "gen": self.gen.get_state(),
            "bank": self.bank.state_dict(),
            "pixels": None if self.pixels is None else self.pixels.detach(),
            "opt": None if self.pixels is None else self.opt.state_dict(),
            "steps_on_batch": self.steps_on_batch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.bank.load_state_dict(state["bank"])
        self.steps_on_batch = int(state["steps_on_batch"])
        self.pixels = None
        if state["pixels"] is not None:
            self.pixels = self.fabric.to_device(state["pixels"].clone()).requires_grad_(True)
            self.opt = self._optimizer()
            self.opt.load_state_dict(state["opt"])
