"""Fast-DFKD's source: a generator whose weights are a meta-learned starting point, adapted for
a few steps per batch, with a data pool of everything it has synthesised."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..data.augment import shift_flip
from ..errors import ConfigError
from ..models import create_generator
from .assign import TARGET_RULES, balanced_targets
from .base import Batch, Source, SourceEnv, mean_gradients, register_source
from .keep import KeepBest
from .pool import DataPool, PooledSource, PoolOptions, pool_options

META_RULES = ("reptile", "fomaml", "reset")
KEEP = ("best", "last")


def target_rule(targets: bool | str, source: str) -> str | None:
    """The rule of a source's ``targets`` option: ``true`` is ``"random"``, ``false`` none."""
    if isinstance(targets, bool):
        return "random" if targets else None
    if targets not in TARGET_RULES:
        raise ConfigError(
            f"source '{source}': targets must be true, false or one of {TARGET_RULES}, "
            f"got '{targets}'"
        )
    return targets


def reset_weights(model: nn.Module, gen: torch.Generator) -> None:
    """Re-draw ``model``'s weights as CMI does for every batch: convolution and linear weights
    N(0, 0.02²), BatchNorm scales N(1, 0.02²), biases 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.02)
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                m.weight.copy_(1 + torch.randn(m.weight.shape, generator=gen) * 0.02)
            else:
                continue
            if m.bias is not None:
                m.bias.zero_()


def reptile_direction(meta: nn.Module, fast: nn.Module) -> list[torch.Tensor]:
    """Reptile's meta-gradient: ``θ − φ`` per parameter (a descent step moves the starting point
    ``θ`` toward the adapted weights ``φ``)."""
    return [(p - q).detach() for p, q in zip(meta.parameters(), fast.parameters(), strict=True)]


@register_source("meta_generator")
@pool_options()
class MetaGeneratorSource(PooledSource, Source):
    """A meta generator ``θ``. Each round starts a *fast* copy ``φ ← θ`` and fresh learnable
    latent codes ``z``, adapts both on the synthesis terms for the round's ``g_steps`` (Adam),
    then updates ``θ`` from that adaptation and adds the round's batch to a data pool that the
    student replays. With a good ``θ`` a handful of steps per batch is enough (Fast-DFKD).

    Args:
        model, nz, channels_last: the generator network (as for ``generator``).
        lr: Adam rate of the fast copy's weights.
        lr_z: Adam rate of the latent codes.
        betas: Adam betas of the fast copy and of the meta update.
        meta: ``"reptile"`` (``θ ← θ − Adam(θ − φ)``, the paper's default), ``"fomaml"``
            (first-order MAML: the sum of the fast copy's gradients over the round), or
            ``"reset"`` (no meta-learning: every round starts from freshly drawn weights,
            :func:`reset_weights` — CMI's generator).
        meta_lr: Adam rate of the meta update (default ``lr × g_steps``).
        keep: the batch a round adds to the pool: ``"best"`` (lowest synthesis loss of the
            round) or ``"last"``.
        synth_batch_size: samples per round (default: the run's batch size).
        shift, flip: random translation (up to this many pixels) and horizontal flips of the
            images the teacher sees during synthesis (the paper's crop-and-flip views).
        targets: the target classes of each round's images, in ``batch.extras["targets"]``
            (the ``class_target`` term): ``"random"`` (or ``true``; Fast-DFKD and CMI),
            ``"balanced"`` (each image gets the class the teacher finds it nearest to on the
            round's first images, no class the target of more than its share of the batch:
            :func:`~dfkd.sources.assign.balanced_targets`), or ``false`` (none).
        condition: feed each image's target class to the generator: its one-hot times this
            scale beside the latent code (0: not at all), so that ``θ`` can learn what each
            class looks like instead of being asked for random classes it is never told. The
            scale sets how much the class outweighs the code at first (the code's norm is
            about √nz).

    The round's kept batch joins the data pool the student replays (the pool options).
    """

    synthesizes = True

    def __init__(
        self,
        model: str = "light_generator",
        nz: int = 64,
        lr: float = 5e-3,
        lr_z: float = 0.015,
        betas: tuple[float, float] = (0.5, 0.999),
        meta: str = "reptile",
        meta_lr: float | None = None,
        keep: str = "best",
        synth_batch_size: int | None = None,
        shift: int = 2,
        flip: bool = False,
        channels_last: bool = True,
        targets: bool | str = True,
        condition: float = 0.0,
        *,
        pool: PoolOptions,
    ) -> None:
        if meta not in META_RULES:
            raise ConfigError(f"source 'meta_generator': meta must be one of {META_RULES}")
        if keep not in KEEP:
            raise ConfigError(f"source 'meta_generator': keep must be one of {KEEP}")
        if shift < 0 or min(lr, lr_z) <= 0:
            raise ConfigError("source 'meta_generator': shift ≥ 0, lr and lr_z > 0 required")
        self.model_name, self.nz, self.channels_last = model, nz, channels_last
        self.target_rule = target_rule(targets, "meta_generator")
        self.has_targets = self.target_rule is not None
        if condition < 0 or (condition and not self.has_targets):
            raise ConfigError(
                "source 'meta_generator': condition must be ≥ 0 and needs target classes "
                f"(targets), got condition {condition} with targets {targets}"
            )
        self.condition = float(condition)
        self.pool_options = pool.check("meta_generator")
        self.lr, self.lr_z, self.betas = lr, lr_z, tuple(betas)
        self.meta, self.meta_lr = meta, meta_lr
        self.keep, self.synth_batch_size = keep, synth_batch_size
        self.shift, self.flip = int(shift), bool(flip)

    def setup(self, env: SourceEnv) -> None:
        rank = getattr(env.fabric, "global_rank", 0)
        self.gen = torch.Generator().manual_seed(env.seed * 1000 + 41 + rank)
        self.init_gen = torch.Generator().manual_seed(env.seed + 43)  # the same on every rank
        c, h, _ = env.data.input_shape
        self.fill = env.data.bounds[0]
        with torch.random.fork_rng(devices=[]):  # same θ on every rank; global RNG untouched
            torch.manual_seed(env.seed + 41)
            nz = self.nz + (env.data.num_classes if self.condition else 0)
            net = create_generator(self.model_name, nz=nz, out_channels=c, image_size=h)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.fabric = env.fabric
        self.net = env.fabric.to_device(net).train()
        meta_lr = self.meta_lr if self.meta_lr is not None else self.lr * max(1, env.g_steps)
        self.meta_opt = torch.optim.Adam(self.net.parameters(), lr=meta_lr, betas=self.betas)
        self.batch_size = self.synth_batch_size or env.batch_size
        self.num_classes = env.data.num_classes
        self.teacher = env.teacher
        self.pool = DataPool(self.pool_options, env, self.gen, self.fill)
        self._reset_round()

    def _reset_round(self) -> None:
        self.fast: nn.Module | None = None
        self.z: torch.Tensor | None = None
        self.kept = KeepBest(last=self.keep == "last")
        self._drawn: torch.Tensor | None = None

    def _start_round(self) -> None:
        """A fast copy of ``θ`` (or fresh weights) and fresh latent codes, with their Adam."""
        if self.meta == "reset":
            reset_weights(self.net, self.init_gen)
        self.fast = copy.deepcopy(self.net)
        z = torch.randn(self.batch_size, self.nz, generator=self.gen)
        self.z = self.fabric.to_device(z).requires_grad_(True)
        targets = torch.randint(self.num_classes, (self.batch_size,), generator=self.gen)
        self.targets = self.fabric.to_device(targets.sort().values)
        if self.target_rule == "balanced":
            with torch.no_grad():
                self.targets = balanced_targets(self.teacher(self._generate(self.fast)),
                                                self.num_classes)  # fmt: skip
        self.opt = self._fast_optimizer()
        if self.meta == "fomaml":
            self.meta_opt.zero_grad(set_to_none=False)
            for p in self.net.parameters():
                p.grad = torch.zeros_like(p) if p.grad is None else p.grad.zero_()

    def _fast_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the fast copy and the latent codes, stepped through Fabric (which unscales
        fp16 gradients and skips steps that overflowed)."""
        assert self.fast is not None and self.z is not None
        opt = torch.optim.Adam(
            [{"params": self.fast.parameters()}, {"params": [self.z], "lr": self.lr_z}],
            lr=self.lr, betas=self.betas,
        )  # fmt: skip
        return self.fabric.setup_optimizers(opt)

    def _generate(self, net: nn.Module, z: torch.Tensor | None = None,
                  targets: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """``net``'s images of latent codes ``z`` (the round's by default), given their target
        classes when the generator is conditioned on them."""
        z = self.z if z is None else z
        assert z is not None
        if not self.condition:
            return net(z)
        t = self.targets if targets is None else targets
        onehot = torch.nn.functional.one_hot(t, self.num_classes).to(z.dtype)
        return net(torch.cat([z, onehot * self.condition], dim=1))

    def draw(self) -> Batch:
        if self.fast is None:
            self._start_round()
        assert self.fast is not None and self.z is not None
        x = self._generate(self.fast).contiguous()
        self._drawn = x.detach()
        view = shift_flip(x, self.shift, self.flip, self.fill, self.gen)
        extras = {"z": self.z, **({"targets": self.targets} if self.has_targets else {})}
        return Batch(x=view, extras=extras)

    def update(self, loss: torch.Tensor) -> None:
        assert self.fast is not None and self._drawn is not None
        self.kept.offer(loss, *self._offered())
        self.opt.zero_grad(set_to_none=True)
        self.fabric.backward(loss)
        if self.meta == "fomaml":
            for p, q in zip(self.net.parameters(), self.fast.parameters(), strict=True):
                if q.grad is not None:
                    p.grad.add_(q.grad)
        self.opt.step()

    def _offered(self) -> tuple[torch.Tensor, ...]:
        """What a synthesis step offers to keep: the batch it drew (subclasses add more)."""
        assert self._drawn is not None
        return (self._drawn,)

    def shared_state(self) -> dict[str, torch.Tensor]:
        return dict(self.net.named_parameters())  # θ: stepped by the ranks' mean gradient

    def _finish(self) -> None:
        """End the round's synthesis: meta-update ``θ`` and pool the round's batch."""
        if self.fast is None or self.kept.best is None:
            return
        if self.meta != "reset":
            self._meta_step()
        targets = self.targets if self.has_targets else None
        self.pool.admit(self.kept.best, targets)
        self._reset_round()

    def _meta_step(self) -> None:
        """Move ``θ`` by the round's meta-gradient (the ranks' mean under DDP)."""
        assert self.fast is not None
        if self.meta == "reptile":
            for p, d in zip(self.net.parameters(), reptile_direction(self.net, self.fast),
                            strict=True):  # fmt: skip
                p.grad = d
        mean_gradients(self.fabric, self.net.parameters())  # every rank: the same θ step
        self.meta_opt.step()
        self.meta_opt.zero_grad(set_to_none=True)

    def round_end(self, round_index: int) -> dict[str, float]:
        self._finish()
        return self.pool.log()

    @torch.no_grad()
    def sample(self, batch_size: int) -> Batch:
        self._finish()
        if len(self.pool) == 0:  # no synthesis yet (g_steps: 0): θ's own samples
            z = self.fabric.to_device(torch.randn(batch_size, self.nz, generator=self.gen))
            t = torch.arange(batch_size, device=z.device) % self.num_classes
            self.pool.add(self._generate(self.net, z, t))
        return self.pool.replay(batch_size)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "net": self.net.state_dict(),
            "meta_opt": self.meta_opt.state_dict(),
            "gen": self.gen.get_state(),
            "init_gen": self.init_gen.get_state(),
            "bank": self.pool.state_dict(),
            "fast": None,
        }
        if self.fast is not None:  # stopped mid-round (a checkpoint between synthesis steps)
            state["fast"] = {
                "net": self.fast.state_dict(),
                "z": self.z.detach(),  # type: ignore[union-attr]
                "targets": self.targets,
                "opt": self.opt.state_dict(),
                **self.kept.state(),
                "meta_grad": [p.grad for p in self.net.parameters()],
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.meta_opt.load_state_dict(state["meta_opt"])
        self.gen.set_state(state["gen"])
        self.init_gen.set_state(state["init_gen"])
        self.pool.load_state_dict(state["bank"])
        self._reset_round()
        fast = state.get("fast")
        if fast is None:
            return
        self.fast = copy.deepcopy(self.net)
        self.fast.load_state_dict(fast["net"])
        self.z = self.fabric.to_device(fast["z"].clone()).requires_grad_(True)
        self.targets = self.fabric.to_device(fast["targets"].clone())
        self.opt = self._fast_optimizer()
        self.opt.load_state_dict(fast["opt"])
        self.kept.restore(fast["best"], fast["best_loss"], device=self.z.device)
        for p, g in zip(self.net.parameters(), fast["meta_grad"], strict=True):
            p.grad = None if g is None else g.clone()
