"""Helpers shared by the benchmark commands (and the exploration scripts in ``explore/``):
what produced a result, result files, budgets in student steps, and Markdown formatting."""

from __future__ import annotations

import csv
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


#: epochs of the lenet5 teachers the benchmarks train, per dataset
TEACHER_EPOCHS = {"mnist10k": 20, "fashion-mnist": 10}


def header(title: str, meta: dict[str, Any], text: str) -> list[str]:
    """A results page's first lines: the title, then the command and machine, then ``text``."""
    return [
        f"# {title}",
        "",
        f"Command: `{meta['command']}` (torch {meta['torch']}, {meta['threads']} "
        f"thread{'s' * (meta['threads'] != 1)}, {meta['machine']}). {text}",
        "",
    ]


def pct(v: float | None, digits: int = 2) -> str:
    """A share in ``[0, 1]`` as a percentage; "–" for a missing value."""
    return "–" if v is None or v != v else f"{100 * v:.{digits}f}"


def pm(v: list[float] | None, scale: float = 100.0, digits: int = 2) -> str:
    """``[mean, std]`` as ``mean ± std`` (scaled); "–" for a missing value."""
    if v is None:
        return "–"
    mean, std = v
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def budget_rounds(method: str, dataset: str, steps: int) -> int:
    """Rounds such that the method takes ``steps`` student steps (its own kd_steps per round),
    after its synthesis-only warm-up rounds."""
    cfg = dfkd.resolve_config(method, dataset)
    return max(1, steps // cfg.kd_steps) + cfg.warmup_rounds


def budget_overrides(method: str, dataset: str, steps: int) -> list[str]:
    """The overrides that give the method the budget of :func:`budget_rounds`."""
    rounds = budget_rounds(method, dataset, steps)
    every = max(1, rounds // 20)
    return [f"rounds={rounds}", f"eval_every={every}", f"checkpoint_every={every}"]


def finished_run(path: Path, rounds: int) -> dict | None:
    """The metrics (with ``history``) of a completed run of ``rounds`` rounds in ``path``."""
    mpath = path / "metrics.json"
    if not mpath.exists():
        return None
    m = json.loads(mpath.read_text())
    if not m.get("completed") or m.get("rounds") != rounds:
        return None
    with (path / "history.csv").open() as f:
        m["history"] = [{"step": int(r["step"]), "student_accuracy": float(r["student_accuracy"])}
                        for r in csv.DictReader(f)]  # fmt: skip
    return m


def class_ratios(ours: list[float], theirs: list[float]) -> list[float | None]:
    """The student's accuracy on each class as a multiple of the teacher's (``None`` where the
    teacher's is 0 or undefined)."""
    return [a / t if t and t == t else None for a, t in zip(ours, theirs, strict=True)]


def worst_class(ratios: list[float | None]) -> int:
    """The class with the lowest ratio."""
    return min((i for i, r in enumerate(ratios) if r is not None), key=ratios.__getitem__)


def log_line(path: Path, record: dict[str, Any]) -> None:
    """Print ``record`` as one JSON line and append it to ``path`` (an exploration log)."""
    line = json.dumps(record)
    print(line, flush=True)
    with path.open("a") as f:
        f.write(line + "\n")
