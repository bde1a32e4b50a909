"""Helpers shared by the benchmark commands."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch

import dfkd


def run_meta(command: str, **extra: Any) -> dict[str, Any]:
    """What produced a result file: the command and the software/machine it ran on."""
    return {
        "command": command,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "dfkd": dfkd.__version__,
        **extra,
    }


def results_doc(results: str, name: str) -> tuple[Path, Path, dict[str, Any]]:
    """``(results folder, json path, existing document or an empty one)``."""
    res = Path(results)
    res.mkdir(parents=True, exist_ok=True)
    path = res / f"{name}.json"
    doc = json.loads(path.read_text()) if path.exists() else {"rows": {}}
    return res, path, doc
