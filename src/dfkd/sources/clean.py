"""Which synthetic samples the teacher finds clean: TA-DFKD's lenient expert (seed 001), a
two-component Gaussian mixture on the teacher's per-sample loss against its own argmax. Used
where a batch is distilled (``gmm_selection``) and where a pool admits images (``admit:
clean``)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture


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
