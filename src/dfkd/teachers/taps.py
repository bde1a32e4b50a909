"""Taps: forward hooks by module path that capture layer outputs and BatchNorm input statistics
without editing the model."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, did_you_mean
from ..losses.bn import channel_stats

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def bn_layers(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """``(path, module)`` of every BatchNorm layer that tracks running statistics, in order."""
    return [
        (n, m) for n, m in model.named_modules() if isinstance(m, _BN) and m.track_running_stats
    ]


def resolve_layers(model: nn.Module, paths: Sequence[str]) -> list[tuple[str, nn.Module]]:
    """Look up modules by dotted path; an unknown path is a one-line error with a suggestion."""
    names = dict(model.named_modules())
    out = []
    for p in paths:
        if p not in names or p == "":
            raise ConfigError(
                f"model has no layer '{p}'{did_you_mean(p, [n for n in names if n])} "
                "(list them with dfkd.taps.layer_names(model))"
            )
        out.append((p, names[p]))
    return out


def layer_names(
    model: nn.Module, kinds: tuple[type, ...] = (nn.Conv2d, nn.Linear, *_BN)
) -> list[str]:
    """Dotted paths of the model's layers of the given kinds (candidates for taps)."""
    return [n for n, m in model.named_modules() if n and isinstance(m, kinds)]


def contrast_layers(model: nn.Module) -> list[str]:
    """Layers whose outputs, averaged per image and channel, describe an image for instance
    discrimination (CMI): every convolution (with BatchNorm after it, its output is what that
    layer normalises); for a model without convolutions, every linear layer but the last."""
    convs = layer_names(model, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
    return convs or layer_names(model, (nn.Linear,))[:-1]


def instance_means(x: torch.Tensor) -> torch.Tensor:
    """Per-sample channel means of ``B×C×…`` activations (``B×C`` as they are)."""
    return x.mean(dim=tuple(range(2, x.ndim))) if x.ndim > 2 else x


def last_linear(model: nn.Module) -> str | None:
    """Path of the model's last ``nn.Linear`` (its input is the penultimate feature)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


class Taps:
    """Context manager that records, on every forward pass inside it:

    * ``outputs[path]``: the output of each module named in ``layers``;
    * ``inputs[path]``: the (first) input of each module named in ``inputs``;
    * ``bn[path]``: ``(mean, var)`` of the *input* of each BatchNorm layer (when ``bn=True``),
      differentiable with respect to the model's input, next to the layer's running statistics
      in ``bn_refs[path]``;
    * ``means[path]``: the per-sample channel means (:func:`instance_means`) of the output of
      each module named in ``means``.

    Example::

        with Taps(teacher, layers=["features.3"], bn=True) as taps:
            logits = teacher(x)
        loss = bn_stat_loss(list(taps.bn.values()), list(taps.bn_refs.values()))
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str] = (),
        bn: bool = False,
        inputs: Sequence[str] = (),
        means: Sequence[str] = (),
    ) -> None:
        self.model = model
        self.mean_layers = resolve_layers(model, means)
        self.means: dict[str, torch.Tensor] = {}
        self.layers = resolve_layers(model, layers)
        self.input_layers = resolve_layers(model, inputs)
        self.inputs: dict[str, torch.Tensor] = {}
        self.bn_modules = bn_layers(model) if bn else []
        self.outputs: dict[str, torch.Tensor] = {}
        self.bn: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._handles: list[Any] = []

    @property
    def bn_refs(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Running ``(mean, var)`` of each tapped BatchNorm layer."""
        return {p: (m.running_mean, m.running_var) for p, m in self.bn_modules}  # type: ignore[misc]

    def clear(self) -> None:
        """Forget what was captured (hooks stay registered)."""
        self.outputs.clear()
        self.inputs.clear()
        self.means.clear()
        self.bn.clear()

    def __enter__(self) -> Taps:
        for path, module in self.layers:
            self._handles.append(module.register_forward_hook(self._output_hook(path)))
        for path, module in self.input_layers:
            self._handles.append(module.register_forward_pre_hook(self._input_hook(path)))
        for path, module in self.bn_modules:
            self._handles.append(module.register_forward_pre_hook(self._bn_hook(path)))
        for path, module in self.mean_layers:
            self._handles.append(module.register_forward_hook(self._mean_hook(path)))
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _output_hook(self, path: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            # clone: a later in-place op (ReLU(inplace=True)) would overwrite the capture
            self.outputs[path] = output.clone() if isinstance(output, torch.Tensor) else output

        return hook

    def _input_hook(self, path: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            self.inputs[path] = inputs[0].clone()

        return hook

    def _mean_hook(self, path: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            self.means[path] = instance_means(output)

        return hook

    def _bn_hook(self, path: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            self.bn[path] = channel_stats(inputs[0])

        return hook
