"""Loading a registered dataset by name, with the input-space options every dataset takes."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from ..config import checked_args, parse_spec
from .base import DATASETS, Data
from .reshape import RESHAPE_OPTIONS, reshape_data, spec_name


def load_dataset(
    name: str | Data, root: str | os.PathLike[str] | None = None, **options: Any
) -> Data:
    """Load a registered dataset by name (``dfkd list datasets``); a :class:`Data` is returned
    as it is.

    Args:
        name: registry name, e.g. ``"digits"``, ``"mnist10k"``, ``"fashion-mnist"``, with
            options as ``NAME:key=value,...``.
        root: where the files are; each dataset has a documented default.
        **options: dataset-specific options (checked against the loader's signature), and
            ``size`` (``N`` or ``HxW``), ``channels`` and ``fit`` (``resize`` or ``pad``), which
            every dataset takes: ``fashion-mnist:size=32,channels=3`` is 32×32×3 Fashion-MNIST.
            The returned data's ``name`` is the canonical spec, options included.
    """
    if isinstance(name, Data):
        return name
    base, spec_options = parse_spec(name, "dataset")
    options = {**spec_options, **options}
    shape = {k: options.pop(k) for k in RESHAPE_OPTIONS if k in options}
    fn = DATASETS.get(base)
    loader_options = checked_args(fn, options, f"dataset '{base}'", skip=("root",))
    data = fn(root=None if root is None else str(root), **loader_options)
    if shape:
        data = reshape_data(data, **shape)
    return replace(data, name=spec_name(base, {**options, **shape}))
