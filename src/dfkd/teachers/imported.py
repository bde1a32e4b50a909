"""Teachers trained elsewhere: a ``module:factory`` network and its weights become a model card
that records the input normalisation the network was trained with, so every command feeds it
inputs in *its* normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data import Data, load_dataset
from ..errors import ConfigError
from ..evaluation.metrics import accuracy, predict
from ..io.cards import check_compatible, load_model
from ..io.runs import check_out_dir
from .fit import finish_teacher

Normalization = str | tuple[Sequence[float], Sequence[float]]


def parse_normalization(spec: Normalization, data: Data) -> tuple[tuple[float, ...], ...]:
    """``(mean, std)`` from ``dataset`` (the dataset's train-split statistics), ``none`` (raw
    pixels in [0, 1]), ``MEAN,STD`` (one value each, for every channel) or ``M1,..,MC,S1,..,SC``,
    or a ``(mean, std)`` pair."""
    c = data.channels
    if isinstance(spec, tuple):
        mean, std = (tuple(float(v) for v in part) for part in spec)
    elif spec == "dataset":
        return data.mean, data.std
    elif spec == "none":
        return (0.0,) * c, (1.0,) * c
    else:
        try:
            values = [float(v) for v in str(spec).split(",")]
        except ValueError:
            values = []
        if len(values) == 2:
            mean, std = (values[0],) * c, (values[1],) * c
        elif len(values) == 2 * c:
            mean, std = tuple(values[:c]), tuple(values[c:])
        else:
            raise ConfigError(
                f"--normalization must be dataset, none, MEAN,STD or {c} means then {c} stds; "
                f"got {spec!r}"
            )
    if len(mean) != c or len(std) != c or min(std) <= 0:
        raise ConfigError(f"normalization needs {c} means and {c} positive stds, got {spec!r}")
    return mean, std


def import_teacher(
    model: str,
    weights: str | Path,
    dataset: str | Data,
    out: str | Path | None = None,
    *,
    normalization: Normalization = "dataset",
    model_args: dict[str, Any] | None = None,
    data_root: str | None = None,
    overwrite: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Make a teacher card for a network trained elsewhere.

    Args:
        model: ``package.module:factory`` (called with ``num_classes``, ``in_channels`` and
            ``image_size`` where it takes them, plus ``model_args``) or a registry name.
        weights: its weights (safetensors; pickles are refused).
        dataset: the dataset it classifies (input shape and classes; its test split, when
            labelled, gives the card's accuracy).
        normalization: how the network expects its inputs: ``dataset`` (the dataset's
            train-split mean/std, what ``dfkd teacher train`` uses), ``none`` (pixels in [0, 1]),
            ``MEAN,STD`` or per-channel values (:func:`parse_normalization`).

    Returns:
        The card (a dict; ``"path"`` with ``out``, ``"model"`` the loaded module).
    """
    out_dir = check_out_dir(out, overwrite=overwrite) if out is not None else None
    data = load_dataset(dataset, data_root)
    mean, std = parse_normalization(normalization, data)
    space = data.with_normalization(mean, std)
    net, _ = load_model(model, space, weights, model_args=model_args)
    check_compatible(net, {}, space, "teacher")
    net.eval()
    acc = accuracy(predict(net, space.x_test), space.y_test) if len(space.y_test) else None
    card = {
        "test_accuracy": acc,
        "imported": {
            "model": model,
            "model_args": dict(model_args or {}),
            "weights": str(weights),
            "normalization": normalization if isinstance(normalization, str) else "custom",
        },
    }
    return finish_teacher(card, net, space, out_dir, model=model, model_args=model_args,
                          overwrite=overwrite, command=command)  # fmt: skip
