"""The :class:`Data` container, the dataset registry and the data root."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..registry import Registry

DATASETS: Registry[Callable[..., Data]] = Registry("datasets")


def register_dataset(
    name: str, **tags: Any
) -> Callable[[Callable[..., Data]], Callable[..., Data]]:
    """Decorator registering a loader ``fn(root: str | None = None, **options) -> Data``."""
    return DATASETS.register(name, **tags)  # type: ignore[return-value]


def data_root() -> Path:
    """Folder where `make data` puts downloadable datasets: ``$DFKD_DATA`` or ``~/.cache/dfkd``."""
    return Path(os.environ.get("DFKD_DATA", "~/.cache/dfkd")).expanduser()


@dataclass
class Data:
    """A labelled image dataset held in memory, normalised, with its train and test splits.

    Attributes:
        name: registry name.
        x_train, y_train, x_test, y_test: float32 images ``N×C×H×W`` (normalised) and int64 labels.
        num_classes: number of classes.
        mean, std: per-channel normalisation applied to pixels in ``[0, 1]``.
        class_names: human-readable class names.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str] = field(default_factory=list)

    @classmethod
    def input_space(
        cls,
        name: str,
        shape: tuple[int, int, int],
        num_classes: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> Data:
        """A dataset with no samples: only the input space a model expects (shape, classes,
        normalisation) — what a model card says, for work that needs no data."""
        empty = torch.empty(0, *shape)
        none = torch.empty(0, dtype=torch.long)
        return cls(name, empty, none, empty, none, num_classes, tuple(mean), tuple(std),
                   [str(i) for i in range(num_classes)])  # fmt: skip

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.image_size)

    @property
    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised values of pixel 0 and pixel 1, shaped ``1×C×1×1``."""
        m = torch.tensor(self.mean).view(1, -1, 1, 1)
        s = torch.tensor(self.std).view(1, -1, 1, 1)
        return (0 - m) / s, (1 - m) / s

    def with_normalization(self, mean: Sequence[float], std: Sequence[float]) -> Data:
        """The same images normalised with ``mean``/``std`` instead (a model trained elsewhere
        sees its own input normalisation); ``self`` when they are already these."""
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        if (mean, std) == (self.mean, self.std):
            return self
        if len(mean) != self.channels or len(std) != self.channels or min(std) <= 0:
            raise ConfigError(
                f"normalization needs {self.channels} mean and {self.channels} positive std "
                f"values for '{self.name}', got mean {list(mean)} and std {list(std)}"
            )
        old_m = torch.tensor(self.mean).view(1, -1, 1, 1)
        old_s = torch.tensor(self.std).view(1, -1, 1, 1)
        new_m, new_s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)

        def convert(x: torch.Tensor) -> torch.Tensor:
            return (x * old_s + old_m - new_m) / new_s

        return replace(self, x_train=convert(self.x_train), x_test=convert(self.x_test),
                       mean=mean, std=std)  # fmt: skip

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised images back to pixels in ``[0, 1]``."""
        m = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        s = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x * s + m).clamp(0, 1)

    def meta(self) -> dict[str, Any]:
        """Metadata recorded in model cards and run outputs."""
        return {
            "dataset": self.name,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
            "class_names": self.class_names,
            "train_size": int(self.y_train.numel()),
            "test_size": int(self.y_test.numel()),
        }


class InputMap:
    """The affine map from one input normalisation to another (the identity — the very same
    tensor — when they agree): ``x ↦ (x·s₁ + m₁ − m₂) / s₂``."""

    def __init__(self, src: Data, dst: Data) -> None:
        self.identity = (src.mean, src.std) == (dst.mean, dst.std)
        view = (1, -1, 1, 1)
        self.scale = (torch.tensor(src.std) / torch.tensor(dst.std)).view(view)
        self.shift = (torch.tensor(src.mean) - torch.tensor(dst.mean)) / torch.tensor(dst.std)
        self.shift = self.shift.view(view)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return x
        return x * self.scale.to(x.device, x.dtype) + self.shift.to(x.device, x.dtype)


def make_data(
    name: str,
    pixels_train: torch.Tensor,
    y_train: torch.Tensor,
    pixels_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    num_classes: int,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    class_names: list[str] | None = None,
) -> Data:
    """Build a :class:`Data` from pixels in ``[0, 1]``; mean/std default to the train split's."""
    pixels_train = pixels_train.float()
    pixels_test = pixels_test.float()
    if mean is None or std is None:
        mean = tuple(float(v) for v in pixels_train.mean(dim=(0, 2, 3)))
        std = tuple(float(v) for v in pixels_train.std(dim=(0, 2, 3)).clamp_min(1e-3))
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return Data(
        name=name,
        x_train=(pixels_train - m) / s,
        y_train=y_train.long(),
        x_test=(pixels_test - m) / s,
        y_test=y_test.long(),
        num_classes=num_classes,
        mean=tuple(mean),
        std=tuple(std),
        class_names=class_names or [str(i) for i in range(num_classes)],
    )
