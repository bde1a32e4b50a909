"""The shape of a distillation problem, as far as a method preset depends on it: the input
space, the number of classes and whether the classes are mirror-symmetric. A method's presets
are measured on named datasets; any dataset of the same profile gets its twin's preset, so a
folder of 28×28 grey images runs like the named dataset it resembles."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..config import parse_spec
from .base import DATASETS, Data
from .load import load_dataset

#: a dataset whose images correlate at least this much, on average, with their own mirror image
#: counts as mirror-symmetric (measured on 512 training images: MNIST-10k 0.39, Fashion-MNIST
#: 0.71, CIFAR-shaped Fashion-MNIST 0.74)
MIRROR_THRESHOLD = 0.55
_MEASURED = 512


@dataclass(frozen=True)
class Profile:
    """What a method preset depends on: ``shape`` (C, H, W), ``classes``, and whether a
    left-right flip keeps an image's class (``mirrored``: the presets' flip augmentation)."""

    shape: tuple[int, int, int]
    classes: int
    mirrored: bool

    def line(self) -> str:
        """``1×28×28, 10 classes``."""
        return "×".join(map(str, self.shape)) + f", {self.classes} classes"


def mirror_correlation(pixels: torch.Tensor) -> float:
    """Mean correlation of each image (``N×C×H×W``) with its left-right mirror image."""
    c = pixels.float() - pixels.float().mean(dim=(1, 2, 3), keepdim=True)
    num = (c * c.flip(-1)).sum(dim=(1, 2, 3))
    return float((num / c.pow(2).sum(dim=(1, 2, 3)).clamp_min(1e-8)).mean())


def measure(data: Data) -> tuple[Profile, float]:
    """The profile of loaded ``data`` and the mirror correlation it was judged by (on up to
    512 training images spread evenly over the split: a folder's split is in class order)."""
    step = max(1, len(data.x_train) // _MEASURED)
    corr = mirror_correlation(data.denormalize(data.x_train[::step][:_MEASURED]))
    shape = tuple(int(v) for v in data.input_shape)
    return Profile(shape, data.num_classes, corr >= MIRROR_THRESHOLD), corr  # type: ignore[arg-type]


def declared(name: str) -> Profile | None:
    """The profile a registered dataset declares (``register_dataset(..., profile=...)``)."""
    return DATASETS.entry(name).tags.get("profile") if name in DATASETS else None


@functools.lru_cache(maxsize=32)
def _measured(spec: str, root: str | None, args: str) -> tuple[Profile, float]:
    return measure(load_dataset(spec, root, **json.loads(args)))


def choose_preset(
    spec: str,
    args: dict[str, Any] | None,
    root: str | None,
    named: list[str],
    loaded: Data | None = None,
) -> tuple[str | None, str]:
    """Which of ``named`` (the datasets a method has presets for) gives the preset for the
    dataset ``spec`` loaded with ``args`` from ``root``, and why, in one line: the dataset's
    own; else its twin of the same shape and classes (mirror symmetry tells twins apart); else
    none, the method's defaults (sized for 32×32 colour). A dataset without a declared profile
    (a folder) is loaded and measured (``loaded``: already loaded)."""
    base, options = parse_spec(spec, "dataset")
    options.update(args or {})
    reshaped = any(k in options for k in ("size", "channels"))
    if base in named and not reshaped:
        return base, "its own preset"
    profile, corr = declared(base), None
    if profile is None and loaded is not None:
        profile, corr = measure(loaded)
    elif profile is None:
        profile, corr = _measured(spec, root, json.dumps(args or {}, sort_keys=True))
    elif reshaped:
        profile = _reshaped(profile, options)
    twins = [n for n in named if _same_space(declared(n), profile)]
    if not twins:
        defaults = "no preset (the method's defaults, sized for 32×32 colour)"
        return None, f"{defaults}: no preset dataset is {profile.line()}"
    same = [n for n in twins if declared(n).mirrored == profile.mirrored]  # type: ignore[union-attr]
    pick = (same or twins)[0]
    why = f"{pick}'s preset: {base} is {profile.line()}"
    if len(twins) > 1:
        sym = "mirror-symmetric" if profile.mirrored else "not mirror-symmetric"
        how = "declared" if corr is None else f"mirror correlation {corr:.2f}"
        how += f", threshold {MIRROR_THRESHOLD}" if corr is not None else ""
        why += f" like {' and '.join(twins)}, and {sym} ({how})"
    return pick, why


def _reshaped(profile: Profile, options: dict[str, Any]) -> Profile:
    """``profile`` after the dataset options ``size`` and ``channels``."""
    from .reshape import _size

    h, w = profile.shape[1:] if options.get("size") is None else _size(options["size"])
    c = int(options.get("channels") or profile.shape[0])
    return replace(profile, shape=(c, h, w))


def _same_space(a: Profile | None, b: Profile) -> bool:
    return a is not None and (a.shape, a.classes) == (b.shape, b.classes)
