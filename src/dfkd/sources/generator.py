"""A generator network as the source: noise → images, trained by the synthesis terms."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from ..models import create_generator
from ..schedules import cosine_decay
from .base import Batch, Source, SourceEnv, register_source
from .pool import DataPool, PoolOptions, pool_options


@register_source("generator")
@pool_options(bank=0, replay_shift=0)
class GeneratorSource(Source):
    """Samples ``G(z)``, ``z ~ N(0, I)``; ``update`` steps G with Adam. With a ``bank``, every
    synthesis batch joins a data pool that the student replays (the pool options); without one
    (the default), the student is taught on fresh samples of G.

    Args:
        model: registered generator (``light_generator`` for CPUs, ``dafl_generator``).
        nz: noise dimension.
        lr: Adam learning rate of the generator.
        betas: Adam betas (DCGAN-style ``(0.5, 0.999)`` by default).
        synth_batch_size: samples per synthesis step (default: the run's batch size).
        reuse_drawn: the first student step after a synthesis step trains on the very batch the
            generator just drew (detached), as DAFL does, instead of drawing again.
        lr_schedule: ``"constant"`` or ``"cosine"`` (G's learning rate decays with the rounds,
            as DFAD decays both players' rates; keeps a late generator from outrunning a
            student whose rate has decayed).
        channels_last: keep G's weights and activations channels-last (same function; on a CPU
            its convolutions run about twice as fast). Outputs are returned contiguous.
    """

    synthesizes = True

    def __init__(
        self,
        model: str = "light_generator",
        nz: int = 64,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.999),
        synth_batch_size: int | None = None,
        reuse_drawn: bool = False,
        channels_last: bool = True,
        lr_schedule: str = "constant",
        *,
        pool: PoolOptions,
    ) -> None:
        if lr_schedule not in ("constant", "cosine"):
            raise ConfigError(
                f"generator lr_schedule must be 'constant' or 'cosine', got '{lr_schedule}'"
            )
        self.pool_options = pool.check("generator", optional=True)
        self.lr_schedule = lr_schedule
        self.model_name, self.nz, self.lr, self.betas = model, nz, lr, tuple(betas)
        self.synth_batch_size = synth_batch_size
        self.reuse_drawn, self.channels_last = reuse_drawn, channels_last

    def setup(self, env: SourceEnv) -> None:
        rank = getattr(env.fabric, "global_rank", 0)
        self.gen = torch.Generator().manual_seed(env.seed * 1000 + 17 + rank)
        c, h, _ = env.data.input_shape
        self.fill = env.data.bounds[0]
        with torch.random.fork_rng(devices=[]):  # reproducible weights; global RNG untouched
            torch.manual_seed(env.seed + 17)
            net = create_generator(self.model_name, nz=self.nz, out_channels=c, image_size=h)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, betas=self.betas)
        self.net, self.opt = env.fabric.setup(net, opt)
        self.fabric = env.fabric
        self.env = env
        self.batch_size = self.synth_batch_size or env.batch_size
        self.pool = DataPool(self.pool_options, env, self.gen, self.fill) \
            if self.pool_options.bank else None  # fmt: skip
        self._drawn: torch.Tensor | None = None
        self._unused = False

    def shared_state(self) -> dict[str, torch.Tensor]:
        return dict(self.net.named_parameters())  # DDP-wrapped: gradients all-reduced

    def _z(self, n: int) -> torch.Tensor:
        return self.fabric.to_device(torch.randn(n, self.nz, generator=self.gen))

    def _g(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).contiguous()

    def draw(self) -> Batch:
        self.net.train()
        z = self._z(self.batch_size)
        x = self._g(z)
        self._drawn, self._unused = x.detach(), True
        return Batch(x=x, extras={"z": z})

    def update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.fabric.backward(loss)
        self.opt.step()
        if self.pool is not None:
            self.pool.add(self._drawn)

    def round_end(self, round_index: int) -> dict[str, float]:
        if self.lr_schedule == "cosine":  # the rate for the next round
            lr = cosine_decay(self.lr, self.env.progress(round_index + 1))
            for g in self.opt.param_groups:
                g["lr"] = lr
        return {"generator_lr": self.opt.param_groups[0]["lr"]}

    @torch.no_grad()
    def sample(self, batch_size: int) -> Batch:
        self.net.train()
        if (
            self.reuse_drawn
            and self._unused
            and self._drawn is not None
            and len(self._drawn) == batch_size
        ):
            self._unused = False
            return Batch(x=self._drawn)
        if self.pool is not None:
            if len(self.pool) == 0:
                self.pool.add(self._g(self._z(batch_size)))
            return self.pool.replay(batch_size)
        return Batch(x=self._g(self._z(batch_size)))

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "drawn": self._drawn if self._unused else None,
            "bank": self.pool.state_dict() if self.pool else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self._drawn = state.get("drawn")
        self._unused = self._drawn is not None
        if self.pool is not None and state["bank"] is not None:
            self.pool.load_state_dict(state["bank"])
