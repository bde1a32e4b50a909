"""NAYER's source: a kept generator behind a noisy layer re-drawn for every batch, fed constant
class embeddings, with a data pool of everything it has synthesised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.augment import shift_flip
from ..errors import ConfigError
from ..io.files import load_tensors
from ..models import create_generator
from .base import Batch, Source, SourceEnv, mean_gradients, register_source
from .keep import KeepBest
from .pool import DataPool, PooledSource, PoolOptions, pool_options

EMBEDDINGS = ("orthogonal", "onehot", "learnable")


def label_embedding(kind: str, num_classes: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    """A ``num_classes × D`` class embedding: ``orthogonal`` (and ``learnable``, its starting
    point) — rows of a random orthogonal matrix scaled to norm √D, ``D = dim``; ``onehot`` — the
    identity (``D = num_classes``); otherwise a path to a safetensors file whose one tensor is
    the embedding (e.g. a text encoder's embeddings of the class names)."""
    if kind == "onehot":
        return torch.eye(num_classes)
    if kind in ("orthogonal", "learnable"):
        if dim < num_classes:
            raise ConfigError(
                f"source 'noisy_generator': embedding_dim {dim} < {num_classes} classes; "
                "orthogonal class embeddings need at least one dimension per class"
            )
        q, _ = torch.linalg.qr(torch.randn(dim, num_classes, generator=gen))
        return q.T.contiguous() * dim**0.5
    return _embedding_file(Path(kind), num_classes)


def _embedding_file(path: Path, num_classes: int) -> torch.Tensor:
    if not path.is_file():
        raise ConfigError(
            f"source 'noisy_generator': embedding must be one of {EMBEDDINGS} or a safetensors "
            f"file; '{path}' does not exist"
        )
    tensors, _ = load_tensors(path)
    if len(tensors) != 1:
        raise ConfigError(f"'{path}' must hold exactly one tensor (the class embedding)")
    emb = next(iter(tensors.values())).float()
    if emb.ndim != 2 or emb.shape[0] != num_classes:
        raise ConfigError(
            f"'{path}' holds a {tuple(emb.shape)} tensor; a class embedding is "
            f"{num_classes} × D (one row per class)"
        )
    return emb


def balanced_targets(n: int, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` class targets: every class in turn (``0 … C−1, 0 … C−1, …``), the remainder drawn
    at random — so a chunk of ``C`` consecutive samples holds each class once."""
    whole = torch.arange(num_classes).repeat(n // num_classes)
    rest = torch.randint(num_classes, (n % num_classes,), generator=gen)
    return torch.cat([whole, rest])


def noisy_codes(
    emb: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Each sample's code through its chunk's noisy layer: sample ``i`` uses layer
    ``i // chunk``, ``z_i = e_i W_k + b_k`` (``weight`` is ``K × D × nz``, ``bias`` ``K × nz``)."""
    k = torch.arange(len(emb), device=emb.device) // chunk
    return torch.einsum("bd,bdn->bn", emb, weight[k]) + bias[k]


@register_source("noisy_generator")
@pool_options()
class NoisyGeneratorSource(PooledSource, Source):
    """A generator ``G`` kept across batches (re-initialised every ``g_life`` rounds). Each
    round draws balanced class targets and fresh *noisy layers* (one linear map per ``chunk``
    samples, weights N(0, 1), bias 0) between the batch-normalised class embeddings and ``G``;
    the round's ``g_steps`` train ``G`` and the noisy layers together (a fresh Adam), and the
    round's best batch joins the data pool the student replays. The targets go to the terms as
    ``batch.extras["targets"]`` (the ``class_target`` term). NAYER, CVPR 2024.

    Args:
        model, nz, channels_last: the generator network; ``nz`` is the noisy layers' width.
        lr: Adam rate of ``G``, the noisy layers (and a learnable embedding).
        betas: Adam betas.
        embedding: ``orthogonal`` (fixed random orthogonal class vectors, the default),
            ``onehot``, ``learnable`` (orthogonal at first, then trained with ``G``), or a path
            to a safetensors file holding a ``C × D`` class embedding.
        embedding_dim: ``D`` of the ``orthogonal`` and ``learnable`` embeddings.
        chunk: samples per noisy layer (default: the number of classes, as the authors' code).
        g_life: rounds between re-initialisations of ``G`` (0: never).
        keep: the batch a round adds to the pool: ``best`` (lowest synthesis loss) or ``last``.
        synth_batch_size: samples per round (default: the run's batch size).
        shift, flip: random translation and horizontal flips of the images the teacher sees
            during synthesis.
    """

    synthesizes = True
    has_targets = True

    def __init__(
        self,
        model: str = "light_generator",
        nz: int = 64,
        lr: float = 4e-3,
        betas: tuple[float, float] = (0.5, 0.999),
        embedding: str = "orthogonal",
        embedding_dim: int = 64,
        chunk: int | None = None,
        g_life: int = 20,
        keep: str = "best",
        synth_batch_size: int | None = None,
        shift: int = 2,
        flip: bool = False,
        channels_last: bool = True,
        *,
        pool: PoolOptions,
    ) -> None:
        if keep not in ("best", "last"):
            raise ConfigError("source 'noisy_generator': keep must be 'best' or 'last'")
        if shift < 0 or g_life < 0 or (chunk is not None and chunk < 1) or lr <= 0:
            raise ConfigError(
                "source 'noisy_generator': shift ≥ 0, g_life ≥ 0, chunk ≥ 1 and lr > 0 required"
            )
        self.model_name, self.nz, self.channels_last = model, nz, channels_last
        self.lr, self.betas, self.embedding_kind = lr, tuple(betas), embedding
        self.embedding_dim, self.chunk, self.g_life, self.keep = embedding_dim, chunk, g_life, keep
        self.synth_batch_size = synth_batch_size
        self.shift, self.flip = int(shift), bool(flip)
        self.pool_options = pool.check("noisy_generator")

    def setup(self, env: SourceEnv) -> None:
        rank = getattr(env.fabric, "global_rank", 0)
        self.gen = torch.Generator().manual_seed(env.seed * 1000 + 53 + rank)
        self.init_gen = torch.Generator().manual_seed(env.seed + 53)  # G's weights: every rank
        self.fabric, self.fill = env.fabric, env.data.bounds[0]
        self.num_classes, self.shape = env.data.num_classes, env.data.input_shape
        emb = label_embedding(self.embedding_kind, self.num_classes, self.embedding_dim,
                              self.init_gen)  # fmt: skip
        self.emb = env.fabric.to_device(emb).requires_grad_(self.embedding_kind == "learnable")
        self.batch_size = self.synth_batch_size or env.batch_size
        self.per_chunk = self.chunk or self.num_classes
        self.pool = DataPool(self.pool_options, env, self.gen, self.fill)
        self.round = 0
        self.net = self._new_generator()
        self._reset_round()

    def _new_generator(self) -> nn.Module:
        """A freshly initialised ``G``: a BatchNorm of the class embeddings (before the noisy
        layers) and the generator (after them)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=self.init_gen)))
            body = create_generator(self.model_name, nz=self.nz, out_channels=self.shape[0],
                                    image_size=self.shape[1])  # fmt: skip
            net = nn.ModuleDict({"norm": nn.BatchNorm1d(self.emb.shape[1]), "body": body})
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return self.fabric.to_device(net).train()

    def _reset_round(self) -> None:
        self.noise: list[torch.Tensor] | None = None
        self.kept = KeepBest(last=self.keep == "last")
        self._drawn: torch.Tensor | None = None

    def _start_round(self) -> None:
        """Balanced targets, fresh noisy layers and a fresh Adam."""
        k = -(-self.batch_size // self.per_chunk)
        d = self.emb.shape[1]
        w = torch.randn(k, d, self.nz, generator=self.gen)
        targets = balanced_targets(self.batch_size, self.num_classes, self.gen)
        self.targets = self.fabric.to_device(targets)
        self.noise = [self.fabric.to_device(t).requires_grad_(True)
                      for t in (w, torch.zeros(k, self.nz))]  # fmt: skip
        self.opt = self._optimizer()

    def _optimizer(self) -> torch.optim.Optimizer:
        """Adam over ``G``, the noisy layers and a learnable embedding."""
        assert self.noise is not None
        params = [*self.net.parameters(), *self.noise]
        if self.emb.requires_grad:
            params.append(self.emb)
        # stepped through Fabric: fp16 gradients unscaled, overflowing steps skipped
        return self.fabric.setup_optimizers(torch.optim.Adam(params, lr=self.lr, betas=self.betas))

    def draw(self) -> Batch:
        if self.noise is None:
            self._start_round()
        assert self.noise is not None
        e = self.net["norm"](self.emb[self.targets])
        x = self.net["body"](noisy_codes(e, *self.noise, self.per_chunk)).contiguous()
        self._drawn = x.detach()
        view = shift_flip(x, self.shift, self.flip, self.fill, self.gen)
        return Batch(x=view, extras={"targets": self.targets})

    def update(self, loss: torch.Tensor) -> None:
        assert self._drawn is not None
        self.kept.offer(loss, self._drawn)
        self.opt.zero_grad(set_to_none=True)
        self.fabric.backward(loss)
        mean_gradients(self.fabric, self.shared_state().values())  # the noisy layers stay local
        self.opt.step()

    def shared_state(self) -> dict[str, torch.Tensor]:
        return {**dict(self.net.named_parameters(prefix="net")), "emb": self.emb}

    def _finish(self) -> None:
        """End the round's synthesis: pool its batch; re-initialise ``G`` when its life ends."""
        if self.noise is None or self.kept.best is None:
            return
        self.pool.admit(self.kept.best, self.targets)
        self._reset_round()
        self.round += 1
        if self.g_life and self.round % self.g_life == 0:
            self.net = self._new_generator()

    def round_end(self, round_index: int) -> dict[str, float]:
        self._finish()
        return self.pool.log()

    @torch.no_grad()
    def sample(self, batch_size: int) -> Batch:
        self._finish()
        if len(self.pool) == 0:
            raise ConfigError("source 'noisy_generator' replays its pool; set g_steps ≥ 1")
        return self.pool.replay(batch_size)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "net": self.net.state_dict(),
            "emb": self.emb.detach(),
            "gen": self.gen.get_state(),
            "init_gen": self.init_gen.get_state(),
            "bank": self.pool.state_dict(),
            "round": self.round,
            "open": None,
        }
        if self.noise is not None:  # stopped between two synthesis steps of a round
            state["open"] = {
                "noise": [t.detach() for t in self.noise],
                "targets": self.targets,
                "opt": self.opt.state_dict(),
                **self.kept.state(),
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.init_gen.set_state(state["init_gen"])
        self.net.load_state_dict(state["net"])
        with torch.no_grad():
            self.emb.copy_(state["emb"])
        self.gen.set_state(state["gen"])
        self.pool.load_state_dict(state["bank"])
        self.round = int(state["round"])
        self._reset_round()
        if state["open"] is None:
            return
        o = state["open"]
        self.targets = self.fabric.to_device(o["targets"].clone())
        self.noise = [self.fabric.to_device(t.clone()).requires_grad_(True) for t in o["noise"]]
        self.opt = self._optimizer()
        self.opt.load_state_dict(o["opt"])
        self.kept.restore(o["best"], o["best_loss"], device=self.targets.device)
