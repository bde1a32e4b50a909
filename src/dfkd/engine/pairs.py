"""Teacher–student layer pairs for feature-level distillation terms (e.g. ``spectral_pair``).

A pair joins a teacher layer and a student layer whose outputs have the same spatial size; when
their channel counts differ, a trainable 1×1 convolution (the *adapter*) maps the student's
channels to the teacher's. Adapters train with the student and are saved in checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..teachers.taps import resolve_layers


@torch.no_grad()
def _probe(
    model: nn.Module,
    modules: Sequence[tuple[str, nn.Module]],
    input_shape: Sequence[int],
    device: torch.device | str | None,
) -> dict[str, tuple[int, ...]]:
    """``path → output shape (without batch)`` of ``modules`` from one eval-mode forward pass on
    zeros; the model's mode is restored and no BatchNorm statistics change."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for path, m in modules:

        def hook(_m: nn.Module, _i: object, out: torch.Tensor, path: str = path) -> None:
            shapes[path] = tuple(out.shape[1:])

        handles.append(m.register_forward_hook(hook))
    if device is None:
        device = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(2, *input_shape, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return shapes


def conv_output_shapes(
    model: nn.Module, input_shape: Sequence[int], device: torch.device | str | None = None
) -> dict[str, tuple[int, ...]]:
    """``path → (C, H, W)`` of every ``nn.Conv2d`` output, in forward order."""
    convs = [(n, m) for n, m in model.named_modules() if n and isinstance(m, nn.Conv2d)]
    return _probe(model, convs, input_shape, device)


def auto_pairs(
    teacher: nn.Module,
    student: nn.Module,
    input_shape: Sequence[int],
    device: torch.device | str | None = None,
) -> list[tuple[str, str]]:
    """Pair the last convolution of each spatial resolution that both models produce.

    Raises:
        ConfigError: when the models share no convolutional resolution.
    """

    def last_per_size(model: nn.Module) -> dict[tuple[int, ...], str]:
        out: dict[tuple[int, ...], str] = {}
        for path, shape in conv_output_shapes(model, input_shape, device).items():
            out[shape[1:]] = path  # insertion order is forward order; later layers win
        return out

    t_sizes, s_sizes = last_per_size(teacher), last_per_size(student)
    pairs = [(t_sizes[hw], s_sizes[hw]) for hw in t_sizes if hw in s_sizes]
    if not pairs:
        raise ConfigError(
            "teacher and student share no convolutional feature-map size to pair; give the "
            "pairs explicitly (layers: [[teacher_path, student_path], ...])"
        )
    return pairs


class FeaturePairs(nn.Module):
    """Paired teacher/student layers and the 1×1 adapters between them.

    Args:
        teacher: the teacher network.
        student: the student network (the unwrapped module).
        input_shape: ``(C, H, W)`` of one input.
        layers: ``[(teacher_path, student_path), ...]``; ``None`` pairs automatically
            (:func:`auto_pairs`).
        device: where to probe the shapes and place the adapters (``None``: each model is
            probed where it lives, and the adapters are made on the CPU).
    """

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_shape: Sequence[int],
        layers: Sequence[Sequence[str]] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if layers is None:
            pairs = auto_pairs(teacher, student, input_shape, device)
        else:
            pairs = [(str(p[0]), str(p[1])) for p in layers]
            if not pairs or any(len(p) != 2 for p in layers):
                raise ConfigError("layers must be a non-empty list of [teacher_path, student_path]")
            resolve_layers(teacher, [t for t, _ in pairs])
            resolve_layers(student, [s for _, s in pairs])
        t_shapes = _shapes_of(teacher, [t for t, _ in pairs], input_shape, device)
        s_shapes = _shapes_of(student, [s for _, s in pairs], input_shape, device)
        self.pairs = pairs
        adapters = []
        for (t, s), ts, ss in zip(pairs, t_shapes, s_shapes, strict=True):
            if ts[1:] != ss[1:]:
                raise ConfigError(
                    f"layers '{t}' (teacher, {ts}) and '{s}' (student, {ss}) differ in spatial "
                    "size; pair layers of the same resolution"
                )
            if ts[0] == ss[0]:
                adapters.append(nn.Identity())
            else:
                adapters.append(nn.Conv2d(ss[0], ts[0], 1, bias=False))
        self.adapters = nn.ModuleList(adapters).to(device or "cpu")

    def reset_parameters(self) -> None:
        """Re-initialise the adapters from the global RNG (the run seeds it first)."""
        for a in self.adapters:
            if isinstance(a, nn.Conv2d):
                a.reset_parameters()

    @property
    def teacher_paths(self) -> list[str]:
        return [t for t, _ in self.pairs]

    @property
    def student_paths(self) -> list[str]:
        return [s for _, s in self.pairs]

    def forward(
        self, student_outputs: dict[str, torch.Tensor], teacher_outputs: dict[str, torch.Tensor]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(adapted student feature, teacher feature), ...]`` in pair order."""
        return [
            (a(student_outputs[s]), teacher_outputs[t])
            for (t, s), a in zip(self.pairs, self.adapters, strict=True)
        ]


def _shapes_of(
    model: nn.Module,
    paths: list[str],
    input_shape: Sequence[int],
    device: torch.device | str | None,
) -> list[tuple[int, ...]]:
    shapes = _probe(model, resolve_layers(model, paths), input_shape, device)
    for p in paths:
        if len(shapes.get(p, ())) != 3:
            raise ConfigError(
                f"layer '{p}' does not output a C×H×W feature map; pair convolutional layers"
            )
    return [shapes[p] for p in paths]
