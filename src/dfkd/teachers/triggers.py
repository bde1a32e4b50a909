"""Trigger inversion for the audit (Neural Cleanse's scan, on synthetic probes).

For every class ``t`` the scan looks for the smallest mask ``m`` (one value per pixel, in
``[0, 1]``) and pattern ``p`` (one per pixel and channel) such that stamping
``(1 - m)·x + m·p`` on clean-looking images ``x`` makes the teacher answer ``t``: it minimises
``CE(teacher(stamped), t) + cost·‖m‖₁`` and raises ``cost`` while the stamp succeeds, lowers it
while it fails. A backdoor's target class needs a far smaller mask than the others (its trigger
is a shortcut), which the median-absolute-deviation anomaly index of the masks' L1 norms shows.
The audit has no data, so ``x`` are images inverted from the teacher itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Data
from ..errors import ConfigError
from ..evaluation.domains import from_pixels, to_pixels
from ..io.files import atomic_write_bytes
from ..io.images import class_grid, encode_png

#: the consistency constant that makes the MAD estimate a normal distribution's σ
MAD_SCALE = 1.4826


@dataclass(frozen=True)
class ScanConfig:
    """Options of the scan: optimisation steps per class, Adam's rate, the mask's first cost,
    the success rate that counts as a flip, the steps between changes of the cost and its
    factors, the batch of probes per step, the anomaly index above which a class is flagged,
    the least spread of the norms as a share of their median (:func:`anomaly_index`), and the
    largest ratio of the smallest norm to the second smallest that still names a target. The
    mask has one value per pixel (Neural Cleanse's). Neural Cleanse's defaults where it has
    them; ``mad_floor`` and ``max_ratio`` are dfkd's."""

    steps: int = 300
    lr: float = 0.1
    cost: float = 1e-3
    success: float = 0.95
    patience: int = 10
    cost_up: float = 1.5
    cost_down: float = 1.5**1.5
    batch_size: int = 64
    threshold: float = 2.0
    mad_floor: float = 0.1
    max_ratio: float = 0.7

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or self.cost < 0:
            raise ConfigError("trigger scan: steps ≥ 1, batch_size ≥ 1, lr > 0 and cost ≥ 0")
        if not 0 < self.success <= 1 or self.cost_up <= 1 or self.cost_down <= 1:
            raise ConfigError("trigger scan: success in (0, 1], cost_up and cost_down > 1")


def inversion_loss(
    logits: torch.Tensor, target: int, mask: torch.Tensor, cost: float
) -> torch.Tensor:
    """``CE(logits, target) + cost · Σ mask``: flip every image to ``target`` with the
    smallest mask."""
    labels = torch.full((logits.shape[0],), target, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels) + cost * mask.abs().sum()


def stamp(p: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Pixel images ``p`` with ``pattern`` stamped through ``mask``: ``(1 - m)·p + m·pattern``."""
    return (1 - mask) * p + mask * pattern


def anomaly_index(norms: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """Per class, how many robust standard deviations its mask norm lies *below* the median of
    all classes' norms (0 for norms at or above it). The deviation is the MAD × 1.4826, but at
    least ``floor`` × the median: when every class needs about the same mask, the MAD is
    tiny and an optimiser's noise would otherwise look like an anomaly."""
    median = norms.median()
    mad = torch.maximum(MAD_SCALE * (norms - median).abs().median(), floor * median)
    return ((median - norms).clamp_min(0) / mad.clamp_min(1e-12)).to(norms.dtype)


def full_mask(m_raw: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The ``1×1×H×W`` mask in ``[0, 1]`` of the free parameters ``m_raw`` (per pixel, or one
    broadcast to every pixel)."""
    return torch.sigmoid(m_raw).expand(1, 1, h, w)


def invert_class(
    teacher: nn.Module, pixels: torch.Tensor, space: Data, target: int, cfg: ScanConfig,
    gen: torch.Generator,
) -> dict[str, Any]:  # fmt: skip
    """The smallest mask and its pattern found for ``target``: the mask's L1 norm (``inf`` if no
    stamp reached ``cfg.success``), its success rate, and the tensors (the mask as ``H×W``)."""
    c, h, w = space.input_shape
    dev = pixels.device
    m_raw = torch.randn(1, 1, h, w, generator=gen).mul_(0.1).to(dev).requires_grad_()
    p_raw = torch.randn(1, c, h, w, generator=gen).mul_(0.1).to(dev).requires_grad_()
    opt = torch.optim.Adam([m_raw, p_raw], lr=cfg.lr, betas=(0.5, 0.9))
    cost, up, down = cfg.cost, 0, 0
    best: dict[str, Any] = {"l1": math.inf, "success": 0.0, "mask": None, "pattern": None}
    for _ in range(cfg.steps):
        idx = torch.randint(len(pixels), (min(cfg.batch_size, len(pixels)),), generator=gen).to(dev)
        mask, pattern = full_mask(m_raw, h, w), torch.sigmoid(p_raw)
        x = from_pixels(stamp(pixels[idx], mask, pattern), space.mean, space.std)
        logits = teacher(x)
        loss = inversion_loss(logits, target, mask, cost)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        success = float((logits.argmax(1) == target).float().mean())
        l1 = float(mask.detach().sum())
        if success >= cfg.success and l1 < best["l1"]:
            best = {"l1": l1, "success": success, "mask": mask.detach()[0, 0].clone(),
                    "pattern": pattern.detach()[0].clone()}  # fmt: skip
        up, down = (up + 1, 0) if success >= cfg.success else (0, down + 1)
        if up >= cfg.patience:
            cost, up = cost * cfg.cost_up, 0
        elif down >= cfg.patience:
            cost, down = cost / cfg.cost_down, 0
    if best["mask"] is None:  # never flipped: report the last stamp, with an infinite norm
        best.update(mask=full_mask(m_raw, h, w).detach()[0, 0].clone(),
                    pattern=torch.sigmoid(p_raw).detach()[0], success=success)  # fmt: skip
    return best


def scan_triggers(
    teacher: nn.Module, probes: torch.Tensor, space: Data, cfg: ScanConfig | None = None,
    seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Invert a trigger toward every class from the normalised images ``probes``; the mask
    norms, the anomaly index, the suspected target class (the smallest mask, when its index
    passes ``cfg.threshold`` and it is under ``cfg.max_ratio`` of the second smallest) and
    each class's mask and pattern."""
    cfg = cfg or ScanConfig()
    gen = torch.Generator().manual_seed(seed)
    pixels = to_pixels(probes.detach(), space.mean, space.std).clamp(0, 1)
    found = [invert_class(teacher, pixels, space, t, cfg, gen) for t in range(space.num_classes)]
    norms = torch.tensor([f["l1"] for f in found], dtype=torch.float64)
    area = float(space.input_shape[1] * space.input_shape[2])  # the largest mask there is
    capped = torch.where(norms.isfinite(), norms, torch.tensor(area, dtype=norms.dtype))
    index = anomaly_index(capped, cfg.mad_floor)
    top = int(capped.argmin())
    smallest = capped.sort().values
    ratio = float(smallest[0] / smallest[1].clamp_min(1e-12))
    return {
        "config": asdict(cfg),
        "mask_l1": [round(float(n), 3) if math.isfinite(n) else None for n in norms.tolist()],
        "flip_rate": [round(f["success"], 4) for f in found],
        "anomaly_index": [round(float(a), 3) for a in index],
        "second_ratio": round(ratio, 3),
        "suspected_target": top
        if float(index[top]) > cfg.threshold and ratio < cfg.max_ratio
        else None,
        "smallest_mask_class": top,
        "masks": torch.stack([f["mask"] for f in found]),
        "patterns": torch.stack([f["pattern"] for f in found]),
    }


def trigger_picture(masks: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """One row per class: the mask (grey), the pattern, and the stamp ``mask · pattern``, as
    ``[0, 1]`` pixels of ``patterns``' channels (a grid of ``3 × classes`` images)."""
    c = patterns.shape[1]
    mask = masks.unsqueeze(1).expand(-1, c, -1, -1)
    return torch.stack([mask, patterns, mask * patterns], 1).flatten(0, 1)


def save_trigger_png(path: str | Path, scan: dict[str, Any]) -> None:
    """Write the recovered masks and patterns of a scan (one row per class) as a PNG."""
    images = trigger_picture(scan["masks"], scan["patterns"])
    classes = len(scan["masks"])
    labels = torch.arange(classes).repeat_interleave(3)
    atomic_write_bytes(path, encode_png(class_grid(images, labels, classes, per_class=3)))
