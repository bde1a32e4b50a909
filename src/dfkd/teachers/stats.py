"""Teacher feature statistics collected once on real data and shipped beside the teacher.

For a teacher without BatchNorm (or for spectral matching) the data owner runs
``dfkd stats collect`` once; data-free methods then match synthetic activations to these
statistics instead of to BatchNorm running statistics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Data
from ..errors import DfkdError
from ..io.files import load_tensors, save_tensors
from ..losses.spectral import amplitude_spectrum
from .taps import Taps, layer_names

STATS_FORMAT = "dfkd-stats/1"


@dataclass
class TeacherStats:
    """Per-layer channel mean/variance and mean amplitude spectrum of a teacher's activations.

    Attributes:
        layers: tapped module paths, in order.
        mean, var: per-channel statistics of each layer's output over the collection data.
        spectrum: batch-mean ``|rfft2|`` of each 4-D layer output (``C×H×(W//2+1)``).
        meta: where the statistics came from (dataset, samples, teacher architecture).
    """

    layers: list[str]
    mean: dict[str, torch.Tensor]
    var: dict[str, torch.Tensor]
    spectrum: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        """Write one safetensors file (atomically)."""
        tensors: dict[str, torch.Tensor] = {}
        for name in self.layers:
            tensors[f"{name}/mean"] = self.mean[name]
            tensors[f"{name}/var"] = self.var[name]
            if name in self.spectrum:
                tensors[f"{name}/spectrum"] = self.spectrum[name]
        meta = {
            "format": STATS_FORMAT,
            "layers": json.dumps(self.layers),
            "meta": json.dumps(self.meta),
        }
        save_tensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path) -> TeacherStats:
        """Read a statistics file written by :meth:`save`, with one-line errors."""
        tensors, meta = load_tensors(path)
        if meta.get("format") != STATS_FORMAT:
            raise DfkdError(
                f"'{path}' is not a dfkd statistics file; make one with `dfkd stats collect`"
            )
        layers = json.loads(meta["layers"])
        try:
            mean = {n: tensors[f"{n}/mean"] for n in layers}
            var = {n: tensors[f"{n}/var"] for n in layers}
        except KeyError as e:
            raise DfkdError(f"statistics file '{path}' lacks {e}") from None
        spectrum = {n: tensors[f"{n}/spectrum"] for n in layers if f"{n}/spectrum" in tensors}
        return cls(layers, mean, var, spectrum, json.loads(meta.get("meta", "{}")))

    def check(self, model: nn.Module) -> None:
        """Raise a one-line error unless every layer exists in ``model`` with matching channels."""
        modules = dict(model.named_modules())
        for n in self.layers:
            if n not in modules:
                raise DfkdError(
                    f"statistics name layer '{n}', which this teacher does not have; "
                    "collect them from this teacher"
                )
            m = modules[n]
            out_ch = next(
                (
                    getattr(m, a)
                    for a in ("out_channels", "out_features", "num_features")
                    if hasattr(m, a)
                ),
                None,
            )
            if out_ch is not None and out_ch != self.mean[n].numel():
                raise DfkdError(
                    f"statistics for layer '{n}' have {self.mean[n].numel()} channels, "
                    f"the teacher's layer has {out_ch}; collect them from this teacher"
                )


@torch.no_grad()
def collect_stats(
    teacher: nn.Module,
    data: Data,
    layers: Sequence[str] | None = None,
    *,
    split: str = "train",
    max_samples: int | None = None,
    batch_size: int = 500,
) -> TeacherStats:
    """Collect per-layer statistics of ``teacher`` (in eval mode) on a split of ``data``.

    Args:
        layers: module paths to tap; default every ``Conv2d`` and ``Linear`` layer.
        split: ``"train"`` (default) or ``"test"``.
        max_samples: use only the first N samples of the split.
    """
    if split not in ("train", "test"):
        raise DfkdError(f"split must be 'train' or 'test', got '{split}'")
    x = data.x_train if split == "train" else data.x_test
    if max_samples is not None:
        x = x[:max_samples]
    names = list(layers) if layers else layer_names(teacher, (nn.Conv2d, nn.Linear))
    if not names:
        raise DfkdError("the teacher has no Conv2d/Linear layers to tap; pass --layers")
    was = teacher.training
    teacher.eval()
    device = next(teacher.parameters()).device
    n = 0
    count: dict[str, int] = {}
    s1: dict[str, torch.Tensor] = {}
    s2: dict[str, torch.Tensor] = {}
    amp: dict[str, torch.Tensor] = {}
    with Taps(teacher, layers=names) as taps:
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device)
            teacher(xb)
            for name in names:
                f = taps.outputs[name].double()
                dims = [0, *range(2, f.ndim)]
                count[name] = count.get(name, 0) + f.numel() // f.shape[1]
                s1[name] = s1.get(name, 0) + f.sum(dim=dims)
                s2[name] = s2.get(name, 0) + f.pow(2).sum(dim=dims)
                if f.ndim == 4:
                    amp[name] = amp.get(name, 0) + amplitude_spectrum(f).sum(0)
            n += len(xb)
    teacher.train(was)
    if n == 0:
        raise DfkdError(f"no samples in the {split} split of '{data.name}'")
    mean = {k: (s1[k] / count[k]).float().cpu() for k in names}
    var = {
        k: (s2[k] / count[k] - (s1[k] / count[k]) ** 2).clamp_min(0).float().cpu() for k in names
    }
    spectrum = {k: (amp[k] / n).float().cpu() for k in amp}
    meta = {"dataset": data.name, "split": split, "samples": n}
    return TeacherStats(names, mean, var, spectrum, meta)
