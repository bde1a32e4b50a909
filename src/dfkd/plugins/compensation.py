"""KDCI's confounder dictionary and prediction compensation (Wang et al., CVPR 2024).

Stage A, :func:`build_dictionary`: the teacher's outputs on substitute samples are clustered
(optional PCA, k-means++) into ``N`` prototypes ``z_i`` with priors ``P(z_i)`` (cluster shares).
Stage B, :class:`KDCIHead`: additive attention ``λ_i(s) = softmax_i(wᵀ tanh(W_s s + W_z z_i))``
over the prototypes gives the prototype integration ``F = Σ_i λ_i z_i P(z_i)`` (the NWGM form of
the backdoor adjustment ``Σ_z P(S | X, z) P(z)``), and the compensated logits are ``s + F``
(``fusion="add"``) or ``Linear([s; F])`` (``fusion="concat"``). Because ``Σ λ_i = 1`` and
``P(z_i) ≈ 1/N``, that ``F`` is about ``1/N`` of a prototype's scale; ``integration="mean"``
(an option, not from the paper) divides by ``Σ_i λ_i P(z_i)``, making ``F`` a weighted mean of
the prototypes at the logits' own scale.

A head can stay with the student after training (registered as head ``kdci``, deployed as
:class:`dfkd.models.heads.Headed`); model cards then carry it as a second safetensors file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.heads import register_head

FEATURES = ("logits", "softmax", "penultimate")
DICTIONARIES = ("kmeans", "random")
PRIORS = ("cluster", "uniform")
ATTENTIONS = ("learned", "random")
FUSIONS = ("add", "concat")
INTEGRATIONS = ("sum", "mean")


def build_dictionary(
    features: torch.Tensor,
    n: int,
    *,
    pca: int | None = 64,
    init: str = "kmeans",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prototypes ``[n, D]`` and their priors ``[n]`` (summing to 1) from ``features [M, D]``.

    ``init="kmeans"``: k-means++ (scikit-learn) in the space of the first ``pca`` principal
    components (``None``/0, or ``pca ≥ D``: the features themselves); each prototype is its
    cluster's mean *in the original space*, its prior the cluster's share of the samples.
    ``init="random"`` (an ablation): prototypes drawn from a Gaussian with the features'
    per-dimension mean and standard deviation; priors are the shares of samples nearest to each.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    m, d = features.shape
    if n < 1:
        raise ConfigError(f"kdci: the dictionary needs at least one prototype, got n={n}")
    if m < n:
        raise ConfigError(
            f"kdci: {m} substitute samples cannot make {n} prototypes; "
            f"lower n (kdci:n=...) or raise samples (kdci:samples=...)"
        )
    if init not in DICTIONARIES:
        raise ConfigError(f"kdci: dictionary must be one of {DICTIONARIES}, got {init!r}")
    v = features.detach().double().cpu()
    distinct = len(np.unique(v.numpy(), axis=0))
    if distinct < n:
        raise ConfigError(
            f"kdci: only {distinct} distinct substitute samples for {n} prototypes; "
            "lower n (kdci:n=...) or use a larger substitute set"
        )
    rng = np.random.default_rng(seed)
    if init == "kmeans":
        space = v.numpy()
        if pca and pca < d:
            space = PCA(n_components=pca, random_state=seed).fit_transform(space)
        km = KMeans(n_clusters=n, init="k-means++", n_init=1, random_state=seed).fit(space)
        assign = torch.as_tensor(km.labels_, dtype=torch.long)
        counts = torch.bincount(assign, minlength=n).double()
        sums = torch.zeros(n, d, dtype=torch.float64).index_add_(0, assign, v)
        protos = sums / counts.clamp_min(1)[:, None]  # an empty cluster (duplicates) has P = 0
    else:
        mean, std = v.mean(0), v.std(0) if m > 1 else torch.zeros(d, dtype=torch.float64)
        protos = mean + std * torch.as_tensor(rng.standard_normal((n, d)))
        assign = torch.cdist(v, protos).argmin(1)
        counts = torch.bincount(assign, minlength=n).double()
    return protos.float(), (counts / m).float()


@register_head("kdci")
class KDCIHead(nn.Module):
    """Compensates student logits with a confounder dictionary (see the module docstring).

    Args:
        num_classes: C, the width of the student's logits.
        feature_dim: D, the width of the prototypes (C for logits/softmax features).
        n: number of prototypes N.
        hidden: width of the additive attention.
        fusion: ``add`` (``s + F``; a learned ``D → C`` map when ``D ≠ C``) or ``concat``
            (``Linear([s; F])``, initialised to the identity on ``s`` plus a small random map
            of ``F``).
        attention: ``learned`` or ``random`` (an ablation: ``λ`` = softmax of fresh Gaussian
            noise per sample, carrying no information about the input).
        prior: ``cluster`` (``P(z_i)`` = cluster share) or ``uniform`` (an ablation: 1/N).
        integration: ``sum`` (``F = Σ λ_i z_i P(z_i)``, the reconstruction) or ``mean``
            (``F = Σ λ_i z_i P(z_i) / Σ λ_i P(z_i)``).

    Until :meth:`set_dictionary` is called the head returns the logits unchanged.
    """

    kind = "kdci"

    def __init__(
        self,
        num_classes: int,
        feature_dim: int,
        n: int = 64,
        hidden: int = 128,
        fusion: str = "add",
        attention: str = "learned",
        prior: str = "cluster",
        seed: int = 0,
        integration: str = "sum",
    ) -> None:
        super().__init__()
        if (
            fusion not in FUSIONS
            or attention not in ATTENTIONS
            or prior not in PRIORS
            or integration not in INTEGRATIONS
        ):
            raise ConfigError(
                f"kdci: fusion in {FUSIONS}, attention in {ATTENTIONS}, prior in {PRIORS}, "
                f"integration in {INTEGRATIONS}"
            )
        if min(num_classes, feature_dim, n, hidden) < 1:
            raise ConfigError("kdci: num_classes, feature_dim, n and hidden must be ≥ 1")
        self.num_classes, self.feature_dim = num_classes, feature_dim
        self.n, self.hidden = n, hidden
        self.fusion, self.attention, self.prior_kind, self.seed = fusion, attention, prior, seed
        self.integration_kind = integration
        self.register_buffer("prototypes", torch.zeros(n, feature_dim))
        self.register_buffer("prior", torch.full((n,), 1.0 / n))
        self.register_buffer("built", torch.zeros((), dtype=torch.bool))
        #: ``built`` mirrored on the host: read without a device sync, and a constant to
        #: ``torch.export`` (the deployed graph has the branch it was exported with)
        self.is_built = False
        self.w_s = nn.Linear(num_classes, hidden, bias=False)
        self.w_z = nn.Linear(feature_dim, hidden)
        self.w = nn.Linear(hidden, 1, bias=False)
        self.project: nn.Module | None = None
        if fusion == "concat":
            self.project = nn.Linear(num_classes + feature_dim, num_classes)
            with torch.no_grad():  # start as s plus a small map of F (so λ gets gradients)
                self.project.weight[:, :num_classes].copy_(torch.eye(num_classes))
                self.project.bias.zero_()
        elif feature_dim != num_classes:
            self.project = nn.Linear(feature_dim, num_classes, bias=False)
        self._noise = torch.Generator().manual_seed(seed)  # random attention (its owner saves it)
        self.last_weights: torch.Tensor | None = None

    def config(self) -> dict[str, Any]:
        """Constructor arguments (what a model card records to rebuild the head)."""
        return {
            "num_classes": self.num_classes,
            "feature_dim": self.feature_dim,
            "n": self.n,
            "hidden": self.hidden,
            "fusion": self.fusion,
            "attention": self.attention,
            "prior": self.prior_kind,
            "seed": self.seed,
            "integration": self.integration_kind,
        }

    def set_dictionary(self, prototypes: torch.Tensor, prior: torch.Tensor) -> None:
        """Install a dictionary from :func:`build_dictionary` (``prior`` is replaced by 1/N
        when the head was made with ``prior="uniform"``)."""
        if prototypes.shape != self.prototypes.shape or prior.shape != self.prior.shape:
            raise ConfigError(
                f"kdci: dictionary of shape {tuple(prototypes.shape)} does not fit a head of "
                f"{self.n} prototypes × {self.feature_dim} features"
            )
        self.prototypes.copy_(prototypes)
        if self.prior_kind == "cluster":
            self.prior.copy_(prior)
        self.built.fill_(True)
        self.is_built = True

    def weights(self, s: torch.Tensor) -> torch.Tensor:
        """The attention ``λ [B, N]`` of each sample over the prototypes."""
        if self.attention == "random":
            noise = torch.randn(len(s), self.n, generator=self._noise)
            return noise.softmax(1).to(s.device, s.dtype)
        h = torch.tanh(self.w_s(s)[:, None, :] + self.w_z(self.prototypes)[None])  # B×N×H
        return self.w(h).squeeze(-1).softmax(1)

    def integration(self, s: torch.Tensor) -> torch.Tensor:
        """The prototype integration ``F(z) = Σ_i λ_i z_i P(z_i)`` for each sample, ``[B, D]``
        (divided by ``Σ_i λ_i P(z_i)`` when ``integration="mean"``; ``last_weights`` keeps the
        λ it used, detached)."""
        lam = self.weights(s)
        self.last_weights = lam.detach()
        f = lam @ (self.prototypes * self.prior[:, None])
        if self.integration_kind == "mean":
            f = f / (lam @ self.prior)[:, None].clamp_min(1e-12)
        return f

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:  # fmt: skip
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.is_built = bool(self.built)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if not self.is_built:
            return s
        f = self.integration(s)
        if self.fusion == "concat":
            assert self.project is not None
            return self.project(torch.cat([s, f], 1))
        return s + (f if self.project is None else self.project(f))


def soft_features(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """The prediction-space features of ``logits``: themselves or their softmax."""
    return F.softmax(logits.float(), 1) if kind == "softmax" else logits.float()
