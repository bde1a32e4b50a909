"""KDCI (Wang et al., CVPR 2024): de-confounded distillation. A confounder dictionary built from
the teacher's outputs on the substitute data compensates the student's predictions before the KD
loss, so the student does not absorb the substitute data's shift (image quality, class
proportions). Works with any source — synthetic (generator, pixels) or sampled real data."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models.heads import Headed
from ..sources.base import Batch, SourceEnv
from .base import Plugin, register_plugin
from .compensation import (
    ATTENTIONS,
    DICTIONARIES,
    FEATURES,
    FUSIONS,
    INTEGRATIONS,
    PRIORS,
    KDCIHead,
    build_dictionary,
    soft_features,
)


@register_plugin("kdci")
class KDCI(Plugin):
    """Compensates the student's logits with a confounder dictionary; the KD terms then compare
    the teacher with the compensated logits, and the attention trains with the student.

    Stage A: the teacher's features of the most recent ``samples`` distillation samples (the
    substitute data as the student sees it: a real substitute set, a memory bank or fresh
    generator draws; the plug-in observes every batch the student trains on) are kept in a ring
    buffer; once it is full, at the end of a round, they are clustered into ``n`` prototypes
    (:func:`dfkd.plugins.compensation.build_dictionary`). Before that the logits pass
    unchanged (a warm-up). Stage B: :class:`dfkd.plugins.compensation.KDCIHead`.

    Logs per round: ``builds`` (dictionaries built so far), ``prior_max`` (the largest
    prototype share) and ``attention_entropy`` (mean entropy of λ, in nats).

    Args:
        n: number of prototypes N (≥ 1; no more than ``samples``).
        samples: substitute samples the dictionary is built from.
        features: ``logits`` (default), ``softmax`` or ``penultimate`` (the input of the
            teacher's last linear layer; an extra teacher pass per step).
        pca: principal components kept before k-means++ (0: none; ≥ D: none).
        hidden: width of the additive attention.
        fusion: ``add`` (``ŝ = s + F``) or ``concat`` (``ŝ = Linear([s; F])``).
        integration: ``sum`` (``F = Σ λᵢ zᵢ P(zᵢ)``, the reconstruction; about 1/N of a
            prototype's scale) or ``mean`` (that sum divided by ``Σ λᵢ P(zᵢ)``: a weighted mean
            of the prototypes, at the logits' scale).
        rebuild_every: rebuild the dictionary from the newest samples every this many rounds
            (0: build once), for sources whose distribution drifts.
        keep: keep the compensation at test time: evaluations use ``ŝ``, and the head is saved
            with the student (its card names a second safetensors file). Default: the raw
            student is evaluated and saved.
        dictionary, prior, attention: ablations — ``random`` prototypes, ``uniform`` P(z),
            ``random`` attention weights (defaults ``kmeans``, ``cluster``, ``learned``).
    """

    def __init__(
        self,
        n: int = 64,
        samples: int = 4096,
        features: str = "logits",
        pca: int = 64,
        hidden: int = 128,
        fusion: str = "add",
        rebuild_every: int = 0,
        keep: bool = False,
        dictionary: str = "kmeans",
        prior: str = "cluster",
        attention: str = "learned",
        integration: str = "sum",
    ) -> None:
        super().__init__()
        choices = {
            "features": (features, FEATURES),
            "fusion": (fusion, FUSIONS),
            "dictionary": (dictionary, DICTIONARIES),
            "prior": (prior, PRIORS),
            "attention": (attention, ATTENTIONS),
            "integration": (integration, INTEGRATIONS),
        }
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(f"kdci: {key} must be one of {allowed}, got {value!r}")
        if n < 1 or hidden < 1 or pca < 0 or rebuild_every < 0:
            raise ConfigError("kdci: n ≥ 1, hidden ≥ 1, pca ≥ 0 and rebuild_every ≥ 0 required")
        if samples < n:
            raise ConfigError(
                f"kdci: samples={samples} cannot make n={n} prototypes; "
                "lower n or raise samples (kdci:n=...,samples=...)"
            )
        self.n, self.samples, self.features, self.pca = n, samples, features, pca
        self.hidden, self.fusion = hidden, fusion
        self.rebuild_every, self.keep = rebuild_every, keep
        self.dictionary, self.prior, self.attention = dictionary, prior, attention
        self.integration = integration
        self.head: KDCIHead | None = None
        self._seed = 0
        self.builds = 0
        self.since_build = 0
        self.filled = 0
        self.pos = 0
        self._entropy: list[torch.Tensor] = []  # per step, on the device (no sync per step)

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("teacher_features",) if self.features == "penultimate" else ()

    def setup(self, env: SourceEnv) -> None:
        c = env.data.num_classes
        self._seed = env.seed
        d = c
        if self.features == "penultimate":
            assert env.teacher_features_dim is not None  # the loop fills it for our needs
            d = env.teacher_features_dim
        self.head = KDCIHead(c, d, self.n, self.hidden, self.fusion, self.attention, self.prior,
                             seed=env.seed, integration=self.integration)  # fmt: skip
        self.register_buffer("bank", torch.zeros(self.samples, d))

    # --- stage A: the substitute samples' features and the dictionary ---------------------------

    def _features(self, batch: Batch) -> torch.Tensor:
        if self.features == "penultimate":
            assert batch.teacher_features is not None
            return batch.teacher_features.detach().flatten(1).float()
        assert batch.teacher_logits is not None
        return soft_features(batch.teacher_logits.detach(), self.features)

    def observe(self, batch: Batch) -> None:
        v = self._features(batch)[-self.samples :]
        idx = (self.pos + torch.arange(len(v))) % self.samples
        self.bank[idx.to(self.bank.device)] = v.to(self.bank.device)
        self.pos = (self.pos + len(v)) % self.samples
        self.filled = min(self.samples, self.filled + len(v))

    def build(self) -> None:
        """Cluster the buffered features into the head's dictionary."""
        assert self.head is not None
        protos, prior = build_dictionary(
            self.bank[: self.filled],
            self.n,
            pca=self.pca or None,
            init=self.dictionary,
            seed=self._seed + self.builds,
        )
        self.head.set_dictionary(protos.to(self.bank.device), prior.to(self.bank.device))
        self.builds += 1
        self.since_build = 0

    # --- stage B: compensation ------------------------------------------------------------------

    def adjust_logits(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor:
        assert self.head is not None
        if not self.head.is_built:
            return logits
        out = self.head(logits)
        lam = self.head.last_weights
        assert lam is not None
        self._entropy.append(-(lam * lam.clamp_min(1e-12).log()).sum(1).mean())
        return out

    def deployed(self, model: nn.Module) -> nn.Module:
        assert self.head is not None
        return Headed(model, self.head) if self.keep else model

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        assert self.head is not None
        self.since_build += 1
        due = self.builds == 0 or (self.rebuild_every and self.since_build >= self.rebuild_every)
        if due and self.filled >= self.samples:
            self.build()
        out = {"builds": float(self.builds)}
        if self.builds:
            out["prior_max"] = float(self.head.prior.max())
        if self._entropy:
            out["attention_entropy"] = float(torch.stack(self._entropy).mean())
        self._entropy.clear()
        return out

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        assert self.head is not None
        counters = [self.builds, self.since_build, self.filled, self.pos]
        return {
            "counters": torch.tensor(counters, dtype=torch.long),
            "noise": self.head._noise.get_state(),
        }

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        assert self.head is not None
        self.builds, self.since_build, self.filled, self.pos = state["counters"].tolist()
        self.head._noise.set_state(state["noise"])
