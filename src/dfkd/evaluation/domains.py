"""Out-of-distribution domains and triggers: the inputs on which a non-transferable teacher is
trained to fail or to mislead, and on which a student is checked for what it inherited.

An OOD domain is another dataset brought into the in-distribution (ID) dataset's input space
(channels, size and normalisation), so the same teacher can read it. A trigger is a fixed pixel
pattern stamped on ID images (a watermark, or a backdoor patch with an attack label).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..config import checked_args, parse_spec
from ..data import Data, load_dataset
from ..errors import ConfigError
from ..registry import Registry

# --- spec strings ------------------------------------------------------------------------------


# --- pixel space helpers -----------------------------------------------------------------------


def to_pixels(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Normalised images → pixels in ``[0, 1]``."""
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x * s + m).clamp(0, 1)


def from_pixels(p: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Pixels in ``[0, 1]`` → normalised images."""
    m = torch.tensor(mean, device=p.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=p.device).view(1, -1, 1, 1)
    return (p - m) / s


def fit_pixels(p: torch.Tensor, shape: tuple[int, int, int], fit: str = "pad") -> torch.Tensor:
    """Bring pixel images to ``shape`` (C, H, W): channels averaged or repeated; ``fit="stretch"``
    resizes to H×W, ``fit="pad"`` resizes to 5/7 of it and centres on black (MNIST's framing of
    a 20×20 digit in 28×28)."""
    c, h, w = shape
    if p.shape[1] != c:
        p = p.mean(dim=1, keepdim=True)
        p = p.expand(-1, c, -1, -1).contiguous()
    if fit == "stretch":
        return F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    if fit != "pad":
        raise ConfigError(f"fit must be 'pad' or 'stretch', got {fit!r}")
    ih, iw = max(1, round(h * 5 / 7)), max(1, round(w * 5 / 7))
    inner = F.interpolate(p, size=(ih, iw), mode="bilinear", align_corners=False).clamp(0, 1)
    top, left = (h - ih) // 2, (w - iw) // 2
    return F.pad(inner, (left, w - iw - left, top, h - ih - top))


# --- OOD domains -------------------------------------------------------------------------------


@dataclass
class OODDomain:
    """Another dataset in an ID dataset's input space.

    Attributes:
        name: the spec it was made from.
        x_train, y_train, x_test, y_test: normalised with the ID dataset's statistics; labels are
            the OOD dataset's own.
        close_set: whether the two label spaces are the same (same class names), so that
            accuracy on the OOD domain with its true labels is meaningful.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    close_set: bool


def load_ood_domain(spec: str, id_data: Data, what: str = "OOD dataset") -> OODDomain:
    """Load the dataset named by ``spec`` (``NAME[:fit=pad|stretch,root=DIR,...]``; other
    options go to the dataset's loader) and bring it to ``id_data``'s channels, size and
    normalisation. Its files are found at the dataset's default place unless ``root`` is given
    (never at the in-distribution dataset's root)."""
    name, args = parse_spec(spec, what)
    root = args.pop("root", None)
    fit = args.pop("fit", "pad")
    if fit not in ("pad", "stretch"):
        raise ConfigError(f"{what} option fit must be 'pad' or 'stretch', got {fit!r}")
    if name == id_data.name.partition(":")[0]:
        raise ConfigError(f"the {what} '{name}' is the in-distribution dataset; pick another")
    ood = load_dataset(name, None if root is None else str(root), **args)
    same_shape = ood.input_shape == id_data.input_shape

    def convert(x: torch.Tensor) -> torch.Tensor:
        p = to_pixels(x, ood.mean, ood.std)
        if not same_shape:
            p = fit_pixels(p, id_data.input_shape, fit)
        return from_pixels(p, id_data.mean, id_data.std)

    close = ood.num_classes == id_data.num_classes and ood.class_names == id_data.class_names
    return OODDomain(
        spec, convert(ood.x_train), ood.y_train, convert(ood.x_test), ood.y_test, close
    )


# --- triggers ----------------------------------------------------------------------------------

TRIGGERS: Registry[Callable[..., torch.Tensor]] = Registry("triggers")


@TRIGGERS.register("square")
def square_trigger(
    x: torch.Tensor, size: int = 0, value: float = 1.0, corner: str = "br", margin: int = 1
) -> torch.Tensor:
    """BadNet's square patch: a ``size``×``size`` block of ``value`` in a corner (``tl``, ``tr``,
    ``bl``, ``br``), ``margin`` pixels from the edges; ``size=0`` picks ⌈H/7⌉ (4 px at 28×28)."""
    h, w = x.shape[-2:]
    k = size or -(-h // 7)
    if corner not in ("tl", "tr", "bl", "br") or not 0 < k + margin <= min(h, w):
        raise ConfigError("square trigger: corner in tl/tr/bl/br and size + margin ≤ image size")
    r0 = margin if corner[0] == "t" else h - margin - k
    c0 = margin if corner[1] == "l" else w - margin - k
    out = x.clone()
    out[..., r0 : r0 + k, c0 : c0 + k] = value
    return out


@TRIGGERS.register("grid")
def grid_trigger(
    x: torch.Tensor, strength: float = 80 / 255, channel: int = 0, period: int = 2
) -> torch.Tensor:
    """NTL's ownership watermark: add ``strength`` to one channel at every pixel whose row or
    column index is a multiple of ``period``, clipped to 1 (80/255 on the red channel in the NTL
    code)."""
    if not 0 <= channel < x.shape[1] or period < 1:
        raise ConfigError(f"grid trigger: channel in [0, {x.shape[1]}) and period ≥ 1")
    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device) % period == 0
    cols = torch.arange(w, device=x.device) % period == 0
    mask = (rows.view(-1, 1) | cols.view(1, -1)).to(x.dtype)
    out = x.clone()
    out[:, channel] = (out[:, channel] + strength * mask).clamp(0, 1)
    return out


def _pattern(shape: tuple[int, ...], seed: int, binary: bool) -> torch.Tensor:
    """A fixed pixel pattern in ``[0, 1]`` drawn from ``seed`` (the same on every device)."""
    g = torch.Generator().manual_seed(seed)
    pattern = torch.rand(shape, generator=g)
    return (pattern > 0.5).float() if binary else pattern


@TRIGGERS.register("blend")
def blend_trigger(x: torch.Tensor, alpha: float = 0.2, seed: int = 0) -> torch.Tensor:
    """The blended-injection trigger: the whole image mixed with a fixed random pattern,
    ``(1 - alpha) * x + alpha * pattern`` (the pattern is uniform noise drawn from ``seed``)."""
    if not 0 < alpha <= 1:
        raise ConfigError(f"blend trigger: alpha in (0, 1], got {alpha}")
    pattern = _pattern(tuple(x.shape[1:]), seed, binary=False).to(x.device, x.dtype)
    return (1 - alpha) * x + alpha * pattern


@TRIGGERS.register("trojan")
def trojan_trigger(
    x: torch.Tensor, size: int = 0, corner: str = "br", margin: int = 1, alpha: float = 1.0,
    seed: int = 1,
) -> torch.Tensor:  # fmt: skip
    """A trojan-style watermark: a ``size``×``size`` patch of a fixed black-and-white pattern
    (drawn from ``seed``) mixed at ``alpha`` into a corner; ``size=0`` picks ⌈H/4⌉ (7 px at
    28×28). Unlike ``square`` the patch has texture, and at ``alpha < 1`` it is see-through."""
    h, w = x.shape[-2:]
    k = size or -(-h // 4)
    if corner not in ("tl", "tr", "bl", "br") or not 0 < k + margin <= min(h, w):
        raise ConfigError("trojan trigger: corner in tl/tr/bl/br and size + margin ≤ image size")
    if not 0 < alpha <= 1:
        raise ConfigError(f"trojan trigger: alpha in (0, 1], got {alpha}")
    r0 = margin if corner[0] == "t" else h - margin - k
    c0 = margin if corner[1] == "l" else w - margin - k
    patch = _pattern((x.shape[1], k, k), seed, binary=True).to(x.device, x.dtype)
    out = x.clone()
    region = out[..., r0 : r0 + k, c0 : c0 + k]
    out[..., r0 : r0 + k, c0 : c0 + k] = (1 - alpha) * region + alpha * patch
    return out


@dataclass
class Trigger:
    """A registered pixel pattern with its options and, for a backdoor, the attack label."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    target: int | None = None

    @classmethod
    def parse(cls, spec: str) -> Trigger:
        """``NAME[:key=value,...]``; the key ``target`` is the attack label."""
        name, args = parse_spec(spec, "trigger")
        fn = TRIGGERS.get(name)
        target = args.pop("target", None)
        if target is not None and (not isinstance(target, int) or target < 0):
            raise ConfigError(f"trigger target must be a class index ≥ 0, got {target!r}")
        args = checked_args(fn, args, f"trigger '{name}'", skip=("x",))
        return cls(name, args, target)

    @property
    def spec(self) -> str:
        opts = {**self.args, **({"target": self.target} if self.target is not None else {})}
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in opts.items()) if opts else "")

    def pixels(self, p: torch.Tensor) -> torch.Tensor:
        """Stamp the pattern on pixel images in ``[0, 1]``."""
        return TRIGGERS.get(self.name)(p, **self.args)

    def apply(self, x: torch.Tensor, data: Data) -> torch.Tensor:
        """Stamp the pattern on images normalised like ``data``."""
        return from_pixels(self.pixels(to_pixels(x, data.mean, data.std)), data.mean, data.std)

    def check(self, data: Data) -> None:
        """Raise if the attack label is not a class of ``data`` or the pattern does not fit."""
        if self.target is not None and self.target >= data.num_classes:
            raise ConfigError(
                f"trigger target {self.target} is not a class of '{data.name}' "
                f"({data.num_classes} classes)"
            )
        self.pixels(to_pixels(data.x_test[:1], data.mean, data.std))
