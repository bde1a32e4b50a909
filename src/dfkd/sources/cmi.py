"""CMI's source: a generator drawn afresh for every batch, and a contrastive term that keeps new
samples distinguishable from each other and from everything synthesised before."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import random_resized_crop
from ..errors import ConfigError
from ..losses.contrastive import instance_contrastive_loss
from ..teachers.taps import Taps, contrast_layers
from .bank import MemoryBank
from .base import SourceEnv, mean_gradients, register_source
from .meta_generator import MetaGeneratorSource
from .pool import PoolOptions, pool_options


class ProjectionHead(nn.Module):
    """Linear → ReLU → linear, then unit norm (CMI's MLP head)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_in, dim_in), nn.ReLU(), nn.Linear(dim_in, dim_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=1)


@register_source("cmi_generator")
@pool_options()
class CMISource(MetaGeneratorSource):
    """Contrastive model inversion. Every round draws a new generator (``meta: reset``) and
    latent codes and trains both for ``g_steps`` on the configured synthesis terms plus an
    instance-contrastive term: the teacher's per-image channel means at every convolution
    (:func:`~dfkd.teachers.taps.contrast_layers`), for the image as the teacher sees it (the
    global view) and for a random resized crop of it (the local view), go through a projection
    head trained with the generator; each local view must pick its own global view among this
    batch's and ``negatives`` remembered ones (InfoNCE at temperature ``contrastive_T``). The
    round's best batch joins the data pool and its features the memory.

    Args:
        contrastive: weight of the contrastive term (CMI: 0.8; 0 turns it off).
        contrastive_T: its temperature.
        head_dim: width of the projection head's output.
        memory: how many past images' features are kept; negatives: how many are drawn per step.
        local_scale: the share of the image area a local view covers (range).
        model, nz, lr, lr_z, betas, keep, synth_batch_size, shift, flip, channels_last,
            targets: as for ``meta_generator`` (whose ``meta`` is ``reset`` here, so a
            generator drawn afresh every round has nothing to learn a class mapping in: no
            ``condition``); ``lr`` also drives the head's Adam.
    """

    synth_needs = ("teacher_instance_means",)

    def __init__(
        self,
        contrastive: float = 0.8,
        contrastive_T: float = 0.2,
        head_dim: int = 128,
        memory: int = 40960,
        negatives: int = 4096,
        local_scale: tuple[float, float] = (0.25, 1.0),
        model: str = "light_generator",
        nz: int = 64,
        lr: float = 1e-3,
        lr_z: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.999),
        keep: str = "best",
        synth_batch_size: int | None = None,
        shift: int = 2,
        flip: bool = False,
        channels_last: bool = True,
        targets: bool | str = True,
        *,
        pool: PoolOptions,
    ) -> None:
        pool.check("cmi_generator")
        if contrastive < 0 or contrastive_T <= 0 or min(head_dim, memory, negatives) < 1:
            raise ConfigError(
                "source 'cmi_generator': contrastive ≥ 0, contrastive_T > 0, and head_dim, "
                "memory and negatives ≥ 1 required"
            )
        super().__init__(
            model=model, nz=nz, lr=lr, lr_z=lr_z, betas=betas, meta="reset", keep=keep,
            synth_batch_size=synth_batch_size, shift=shift, flip=flip,
            channels_last=channels_last, targets=targets, pool=pool,
        )  # fmt: skip
        self.weight, self.T, self.head_dim = contrastive, contrastive_T, head_dim
        self.memory_size, self.negatives = memory, negatives
        self.local_scale = (float(local_scale[0]), float(local_scale[1]))

    def setup(self, env: SourceEnv) -> None:
        super().setup(env)
        self.teacher = env.teacher
        self.layers = contrast_layers(env.teacher)
        with torch.no_grad(), Taps(env.teacher, means=self.layers) as taps:
            env.teacher(env.fabric.to_device(torch.zeros(2, *env.data.input_shape)))
        dim = sum(m.shape[1] for m in taps.means.values())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(env.seed + 47)
            self.head = env.fabric.to_device(ProjectionHead(dim, self.head_dim))
        head_opt = torch.optim.Adam(self.head.parameters(), lr=self.lr, betas=self.betas)
        self.head_opt = env.fabric.setup_optimizers(head_opt)
        self.memory = MemoryBank(self.memory_size)
        self._features: torch.Tensor | None = None

    def _local_features(self, x: torch.Tensor) -> torch.Tensor:
        local = random_resized_crop(x, self.gen, self.local_scale)
        with self.fabric.autocast(), Taps(self.teacher, means=self.layers) as taps:
            self.teacher(local)
        return torch.cat(list(taps.means.values()), dim=1).float()

    def synth_terms(self, ctx: Any) -> dict[str, torch.Tensor]:
        if self.weight == 0:
            return {}
        # the loop tapped the same layers of the bare teacher, in the same (forward) order
        glob = torch.cat(list(ctx.taps["means"].values()), dim=1).float()  # fp32 under autocast
        local = self._local_features(ctx.x)
        n = len(glob)
        self._features = torch.cat([local, glob], dim=1).detach()
        if len(self.memory):
            k = min(self.negatives, len(self.memory))
            idx = torch.randperm(len(self.memory), generator=self.gen)[:k]
            old = self.fabric.to_device(self.memory.data[idx]).to(glob.dtype)
            old_local, old_glob = old.chunk(2, dim=1)
            local, glob = torch.cat([local, old_local]), torch.cat([glob, old_glob])
        loss = instance_contrastive_loss(self.head(local), self.head(glob), n, self.T)
        return {"contrastive": self.weight * loss}

    def update(self, loss: torch.Tensor) -> None:
        self.head_opt.zero_grad(set_to_none=True)
        super().update(loss)
        mean_gradients(self.fabric, self.head.parameters())  # one head for every rank
        self.head_opt.step()

    def shared_state(self) -> dict[str, torch.Tensor]:
        return {**super().shared_state(), **dict(self.head.named_parameters(prefix="head"))}

    def _offered(self) -> tuple[torch.Tensor, ...]:
        """The batch and, with the contrastive term on, its features (for the memory)."""
        batch = super()._offered()
        return batch if self._features is None else (*batch, self._features)

    def _best_features(self) -> torch.Tensor | None:
        items = self.kept.items
        return items[1] if items is not None and len(items) > 1 else None

    def _finish(self) -> None:
        features = self._best_features()
        if self.fast is not None and features is not None:
            self.memory.add(features)
        super()._finish()

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "head": self.head.state_dict(),
            "head_opt": self.head_opt.state_dict(),
            "memory": self.memory.state_dict(),
            "best_features": self._best_features(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.head.load_state_dict(state["head"])
        self.head_opt.load_state_dict(state["head_opt"])
        self.memory.load_state_dict(state["memory"])
        features = state.get("best_features")
        if features is not None and self.kept.items is not None:
            self.kept.items = (self.kept.items[0], features)
