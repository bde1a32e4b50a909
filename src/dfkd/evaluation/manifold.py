"""Precision and recall of synthetic data against real data in a feature space, by k-nearest-
neighbour manifolds (Kynkäänniemi et al., NeurIPS 2019): a set's manifold is the union of balls
around its points, each as wide as the distance to the point's k-th nearest neighbour in the
set. Precision is the share of synthetic points inside the real manifold (are the images
realistic?), recall the share of real points inside the synthetic one (is every mode of the
real data synthesised?)."""

from __future__ import annotations

import torch

#: neighbours that size each ball (the paper's default)
K = 3


def knn_radii(points: torch.Tensor, k: int = K) -> torch.Tensor:
    """Each point's distance to its ``k``-th nearest other point of ``points`` (``N×D``);
    ``inf`` when the set has at most ``k`` points (its manifold is then everything)."""
    n = len(points)
    if n <= k:
        return torch.full((n,), float("inf"))
    d = torch.cdist(points, points)
    return d.kthvalue(k + 1, dim=1).values  # the 1st is the point itself


def inside(queries: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each query lies in at least one ball (``centers``, ``radii``)."""
    if len(centers) == 0 or len(queries) == 0:
        return torch.zeros(len(queries), dtype=torch.bool)
    return (torch.cdist(queries, centers) <= radii[None, :]).any(dim=1)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = K) -> tuple[float, float]:
    """``(precision, recall)`` of ``fake`` against ``real`` features; NaN for an empty set."""
    if len(real) == 0 or len(fake) == 0:
        return float("nan"), float("nan")
    real, fake = real.double(), fake.double()
    precision = inside(fake, real, knn_radii(real, k)).double().mean()
    recall = inside(real, fake, knn_radii(fake, k)).double().mean()
    return float(precision), float(recall)


def feature_scale(real: torch.Tensor, fake: torch.Tensor) -> float:
    """The synthetic features' mean Euclidean norm over the real ones': below 1 when the images
    excite the network less than real data does (NaN for an empty set)."""
    if len(real) == 0 or len(fake) == 0:
        return float("nan")
    return float(fake.double().norm(dim=1).mean() / real.double().norm(dim=1).mean())


def class_precision_recall(
    real: torch.Tensor,
    real_classes: torch.Tensor,
    fake: torch.Tensor,
    fake_classes: torch.Tensor,
    num_classes: int,
    k: int = K,
) -> dict[str, list[float]]:
    """Per class ``c``: precision and recall of the synthetic points of class ``c`` against the
    real points of class ``c`` (recall 0 for a class never synthesised)."""
    precision, recall = [], []
    for c in range(num_classes):
        r, f = real[real_classes == c], fake[fake_classes == c]
        p, q = precision_recall(r, f, k)
        precision.append(p)
        recall.append(0.0 if len(f) == 0 and len(r) else q)
    return {"precision": precision, "recall": recall}
