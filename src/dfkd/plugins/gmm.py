"""Clean-sample selection of TA-DFKD (seed 001): the teacher as a lenient expert keeps only the
synthetic samples it finds clean, by a two-component Gaussian mixture on its per-sample loss."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from ..errors import ConfigError
from ..sources.base import Batch, Source
from ..sources.generator import GeneratorSource
from .base import Plugin, register_plugin


def teacher_self_loss(teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of the teacher against its own argmax, ``−log max softmax``."""
    t = teacher_logits.float()
    return torch.logsumexp(t, dim=1) - t.amax(dim=1)


def clean_probability(
    losses: torch.Tensor,
    max_iter: int = 10,
    tol: float = 1e-2,
    reg_covar: float = 5e-4,
    seed: int = 0,
) -> torch.Tensor:
    """Probability that each sample belongs to the low-loss component of a two-component
    Gaussian mixture fitted to the batch's min-max normalised losses (DivideMix / TA-DFKD).

    A batch the mixture cannot separate — fewer than two samples, or all losses equal — gives
    probability 1 everywhere (nothing is evidence of noise).
    """
    x = losses.detach().double().cpu().numpy().reshape(-1)
    if x.size < 2 or not np.isfinite(x).all():
        return torch.ones(x.size, dtype=torch.float32)
    lo, hi = x.min(), x.max()
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return torch.ones(x.size, dtype=torch.float32)
    z = ((x - lo) / (hi - lo)).reshape(-1, 1)
    gmm = GaussianMixture(
        n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(z)
    clean = int(np.argmin(gmm.means_.reshape(-1)))
    return torch.from_numpy(gmm.predict_proba(z)[:, clean]).float()


def select_clean(
    teacher_logits: torch.Tensor, threshold: float = 0.5, **gmm_args: Any
) -> torch.Tensor:
    """Boolean mask of the samples whose clean probability exceeds ``threshold``; never empty
    (if nothing passes, the lowest-loss samples are kept)."""
    losses = teacher_self_loss(teacher_logits)
    keep = clean_probability(losses, **gmm_args) > threshold
    if not keep.any():
        keep = (losses == losses.min()).cpu()
    return keep.to(teacher_logits.device)


@register_plugin("gmm_selection")
class GMMSelection(Plugin):
    """TA-DFKD's lenient expert: per batch, fit a 2-component GMM to the teacher's normalised
    per-sample loss and keep the samples whose low-loss probability exceeds ``threshold``.

    Applies to distillation batches and, with ``synthesis`` (default), to the generator's
    batches too, so the synthesis terms see only clean samples (as in the TA-DFKD code, where
    the adversarial and BatchNorm terms are computed on the selected subset). Logs the kept
    fraction of every step: its per-round mean and minimum go to ``history.csv``
    (``gmm_selection/kept_fraction``, ``.../kept_min``, ``.../synth_kept_fraction``), and the
    whole per-step trace is kept in the plug-in's state (``kept_trace``).

    Args:
        threshold: keep a sample when P(clean) > threshold (paper: 0.5).
        max_iter, tol, reg_covar: scikit-learn ``GaussianMixture`` settings (paper: 10, 1e-2,
            5e-4).
        synthesis: also select the synthesis batches.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        max_iter: int = 10,
        tol: float = 1e-2,
        reg_covar: float = 5e-4,
        synthesis: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= threshold < 1.0:
            raise ConfigError(f"gmm_selection: threshold must be in [0, 1), got {threshold}")
        if max_iter < 1 or tol <= 0 or reg_covar <= 0:
            raise ConfigError("gmm_selection: max_iter ≥ 1, tol > 0 and reg_covar > 0 required")
        self.threshold, self.synthesis = threshold, synthesis
        self.gmm_args = {"max_iter": max_iter, "tol": tol, "reg_covar": reg_covar}
        self._round: dict[str, list[float]] = {"distill": [], "synth": []}
        self.kept_trace: list[tuple[int, float]] = []  # (phase: 0 synth / 1 distill, fraction)

    def check(self, method: Any, source: Source) -> str | None:
        if not isinstance(source, GeneratorSource):
            return (
                "it selects among generated samples; use it with a generator method "
                "(dfq, dfad, dafl, ta_dfkd)"
            )
        return None

    def _keep(self, batch: Batch, phase: str) -> Batch:
        assert batch.teacher_logits is not None
        keep = select_clean(batch.teacher_logits, self.threshold, **self.gmm_args)
        frac = float(keep.float().mean())
        self._round[phase].append(frac)
        self.kept_trace.append((0 if phase == "synth" else 1, frac))
        return batch.subset(keep)

    def select(self, batch: Batch) -> Batch:
        return self._keep(batch, "distill")

    def select_synthesis(self, batch: Batch) -> Batch | None:
        return self._keep(batch, "synth") if self.synthesis else None

    def round_end(self, info: dict[str, Any]) -> dict[str, float]:
        d, s = self._round["distill"], self._round["synth"]
        out: dict[str, float] = {}
        if d:
            out["kept_fraction"] = sum(d) / len(d)
            out["kept_min"] = min(d)
        if s:
            out["synth_kept_fraction"] = sum(s) / len(s)
        d.clear()
        s.clear()
        return out

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        return {"kept_trace": torch.tensor(self.kept_trace, dtype=torch.float64).reshape(-1, 2)}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.kept_trace = [(int(p), float(f)) for p, f in state["kept_trace"].tolist()]
