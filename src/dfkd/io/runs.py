"""Output folders: what marks a run, refusing to clobber one, and writing its records."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path
from typing import Any

from ..errors import DfkdError
from .files import atomic_write_text, check_writable

RUN_MARKERS = (
    "config.yaml",
    "metrics.json",
    "checkpoint.safetensors",
    "student.json",
    "teacher.json",
    "history.csv",
    "samples.png",
)


#: a student's deployed head beside its weights (``student.<kind>.safetensors``)
HEAD_FILES = "student.*.safetensors"


def existing_run_files(out: Path) -> list[str]:
    """Names of run files already in ``out``."""
    if not out.is_dir():
        return []
    return [m for m in RUN_MARKERS if (out / m).exists()] + sorted(
        p.name for p in out.glob(HEAD_FILES)
    )


def check_out_dir(out: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Validate ``out`` before any work: refuse a folder holding another run unless ``overwrite``
    or ``resume``. Nothing is deleted here."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DfkdError(f"--out '{out}' is a file, not a folder; choose another path")
    if overwrite and resume:
        raise DfkdError("--overwrite and --resume exclude each other; choose one")
    check_writable(out)
    found = existing_run_files(out)
    if resume:
        if "config.yaml" not in found:
            raise DfkdError(f"nothing to resume in '{out}' (no config.yaml); drop --resume")
    elif found and not overwrite:
        raise DfkdError(
            f"'{out}' already holds a run ({', '.join(found)}); "
            "pass --overwrite to replace it, --resume to continue it, or choose another --out"
        )
    return out


def clear_run_files(out: Path) -> None:
    """Remove a previous run's files and its ``logs/`` (only called with ``overwrite`` after
    validation passed)."""
    for m in existing_run_files(out):
        (out / m).unlink(missing_ok=True)
    shutil.rmtree(out / "logs", ignore_errors=True)


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """Atomically write the evaluation curve as CSV (columns = union of row keys, in order)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())
