"""The run's live curves through Lightning Fabric's loggers (``logger: csv | tensorboard``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DfkdError

LOG_DIR = "logs"


def make_loggers(kind: str, out_dir: Path | None, resume_step: int | None = None) -> list[Any]:
    """The Fabric loggers for ``kind``, writing to ``out_dir/logs`` (none without a folder). A
    resumed run (``resume_step``: its checkpoint's step) keeps what was logged up to that step
    and drops what came after it (those steps run again)."""
    if out_dir is None or kind == "none":
        return []
    from lightning_fabric.loggers import CSVLogger, TensorBoardLogger

    if kind == "csv":
        kept = _logged_rows(out_dir / LOG_DIR / "metrics.csv", resume_step)
        logger = CSVLogger(root_dir=out_dir, name=LOG_DIR, version="", flush_logs_every_n_steps=1)
        for step, row in kept:  # the writer starts a new file: the kept rows go first
            logger.log_metrics(row, step)
        return [logger]
    from lightning_utilities.core.imports import RequirementCache

    if not (RequirementCache("tensorboard") or RequirementCache("tensorboardX")):
        raise DfkdError(
            "logger: tensorboard needs TensorBoard: pip install 'dfkd[tensorboard]' (or set "
            "logger: csv)"
        )
    purge = {} if resume_step is None else {"purge_step": resume_step + 1}
    return [TensorBoardLogger(root_dir=out_dir, name=LOG_DIR, version="",
                              default_hp_metric=False, **purge)]  # fmt: skip


def _logged_rows(path: Path, up_to: int | None) -> list[tuple[int, dict[str, float]]]:
    """The rows of a run's ``metrics.csv`` up to step ``up_to`` (none for a new run)."""
    if up_to is None or not path.is_file():
        return []
    rows = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            step = int(float(r.pop("step")))
            if step <= up_to:
                rows.append((step, {k: float(v) for k, v in r.items() if v not in ("", None)}))
    return rows


def numeric(values: dict[str, Any]) -> dict[str, float]:
    """The plain numbers of ``values`` (what a logger takes)."""
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
    }


def log_image(fabric: Any, tag: str, image: np.ndarray, step: int) -> None:
    """Add ``image`` (uint8 ``H×W`` or ``H×W×3``) to the loggers that keep images."""
    from lightning_fabric.loggers import TensorBoardLogger

    for logger in fabric.loggers:
        if isinstance(logger, TensorBoardLogger):
            fmt = "HW" if image.ndim == 2 else "HWC"
            logger.experiment.add_image(tag, image, step, dataformats=fmt)


def finalize(fabric: Any) -> None:
    """Flush and close the loggers (a stopped run's files are complete up to its last round)."""
    for logger in fabric.loggers:
        logger.finalize("success")
