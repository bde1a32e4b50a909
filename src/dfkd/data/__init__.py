"""Datasets as in-memory tensors plus metadata, behind one registry.

Every loader returns a :class:`Data` whose images are already normalised with the dataset's
mean/std; ``Data.bounds`` gives the normalised pixel range, used to clip synthetic images.
"""

from __future__ import annotations

from . import readers as _readers  # noqa: F401  (registers the built-in datasets)
from .base import DATASETS, Data, InputMap, data_root, register_dataset
from .load import load_dataset

__all__ = ["DATASETS", "Data", "InputMap", "data_root", "load_dataset", "register_dataset"]
