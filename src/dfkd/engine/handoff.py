"""How a run's result reaches the process that launched it: through files in a private folder,
never through the launcher's return value.

Lightning's spawn launcher sends rank 0's return value through a pipe, and reads the pipe only
after every process has exited. A pipe holds 64 KiB, so a larger result (any student above
about 16k parameters, or a long run's history) left rank 0 blocked in its write while the
launcher waited for it to exit: the run never ended. Files have no such limit, and one path
serves every launch (in-process, spawned, ``torchrun``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..io.files import load_tensors, read_json, save_tensors, write_json


@contextmanager
def handoff_folder() -> Iterator[Path]:
    """A private, empty folder for one launch's result, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="dfkd-handoff-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def hand_back(folder: Path, rank: int, metrics: dict[str, Any],
              weights: dict[str, torch.Tensor]) -> None:  # fmt: skip
    """Leave this rank's metrics (JSON) and trained weights (safetensors) in ``folder``."""
    save_tensors(folder / f"rank{rank}.safetensors", weights)
    write_json(folder / f"rank{rank}.json", metrics)  # last: its presence means complete


def take_back(folder: Path, rank: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The metrics and weights that ``rank`` left in ``folder``."""
    metrics = read_json(folder / f"rank{rank}.json", "run result")
    weights, _ = load_tensors(folder / f"rank{rank}.safetensors")
    return metrics, weights
