"""``dfkd compare``: runs side by side — a table of their final figures and one picture of
student accuracy (and, for synthesising runs, the recall of their synthetic data) against wall
time. A finished run is read from ``metrics.json`` and
``history.csv``; one still running from its live log (``logs/metrics.csv``)."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from ..config import safe_load
from ..errors import DfkdError
from .files import atomic_write_bytes, atomic_write_text, check_writable, read_json

COLUMNS = ("run", "method", "teacher", "status", "final %", "last-5 %", "% of teacher",
           "recall", "wall s", "steps")  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _curve(rows: list[dict[str, str]], key: str = "student_accuracy") -> list[tuple[float, float]]:
    """(wall seconds, ``key``) of every evaluation row that has it (accuracy; ``synth_recall``:
    the recall of the synthetic pool)."""
    return [(float(r["wall_s"]), float(r[key]))
            for r in rows if r.get(key) and r.get("wall_s")]  # fmt: skip


def read_run(run: str | Path) -> dict[str, Any]:
    """One run's figures and evaluation curve."""
    run = Path(run)
    if not run.is_dir():
        raise DfkdError(f"'{run}' is not a run folder")
    config = safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    method = str((config or {}).get("method", "?"))
    has_card = (run / "student.json").is_file()
    card = read_json(run / "student.json", "student card") if has_card else {}
    if (run / "metrics.json").is_file() and (run / "history.csv").is_file():
        m = read_json(run / "metrics.json", "metrics file")
        rows = _rows(run / "history.csv")
        curve = _curve(rows)
        final, last5 = m.get("student_accuracy"), m.get("acc_last5")
        teacher_acc, steps, wall = m.get("teacher_accuracy"), m.get("steps"), m.get("wall_s")
        status = "finished"
    elif (run / "logs" / "metrics.csv").is_file():
        rows = _rows(run / "logs" / "metrics.csv")
        curve = _curve(rows)
        if not curve:
            raise DfkdError(f"run '{run}' has not been evaluated yet; compare it later")
        final = curve[-1][1]
        last5 = sum(a for _, a in curve[-5:]) / len(curve[-5:])
        teacher_acc, wall = None, curve[-1][0]
        steps = max(int(float(r["step"])) for r in rows if r.get("step"))
        status = "running"
    else:
        raise DfkdError(
            f"'{run}' holds no finished run (metrics.json, history.csv) and no live log "
            "(logs/metrics.csv); give folders that `dfkd distill --out` wrote"
        )
    return {
        "run": run.name or str(run), "path": str(run), "method": method,
        "teacher": Path(str(card.get("teacher") or "?")).name, "status": status,
        "final": final, "last5": last5,
        "teacher_accuracy": teacher_acc, "wall_s": wall, "steps": steps, "curve": curve,
        "recall_curve": _curve(rows, "synth_recall"),
    }  # fmt: skip


def _pct(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.2f}"


def table(runs: list[dict[str, Any]]) -> str:
    """The runs as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in runs:
        share = (None if not r["teacher_accuracy"] or r["final"] is None
                 else r["final"] / r["teacher_accuracy"])  # fmt: skip
        wall = "–" if r["wall_s"] is None else f"{r['wall_s']:.0f}"
        recall = f"{r['recall_curve'][-1][1]:.3f}" if r["recall_curve"] else "–"
        cells = [r["run"], r["method"], str(r["teacher"]), r["status"], _pct(r["final"]),
                 _pct(r["last5"]), _pct(share), recall, wall, str(r["steps"])]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]]) -> bytes | None:
    """Student accuracy against wall time, one line per run, and beside it the recall of the
    synthetic pool when a run measured it, as PNG bytes (``None`` without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [("curve", "student test accuracy (%)", "student accuracy against time")]
    if any(r["recall_curve"] for r in runs):
        panels.append(("recall_curve", "recall of the synthetic data (%)",
                       "synthetic data's recall against time"))  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(8 * len(panels), 5), squeeze=False)
    for ax, (key, ylabel, title) in zip(axes[0], panels, strict=True):
        for r in runs:
            if r[key]:
                t, v = zip(*r[key], strict=True)
                ax.plot(t, [100 * a for a in v], marker=".", label=f"{r['run']} ({r['method']})")
        ax.set(xlabel="wall-clock seconds", ylabel=ylabel, ylim=(0, 100), title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def compare_runs(runs: list[str | Path], out: str | Path | None = None,
                 overwrite: bool = False) -> dict[str, Any]:  # fmt: skip
    """Read ``runs``, write ``compare.md`` and ``compare.png`` to ``out`` (default: the runs'
    common parent folder); returns the table, the rows and the files written."""
    if not runs:
        raise DfkdError("give at least one run folder to compare")
    rows = [read_run(r) for r in runs]
    folder = Path(out) if out is not None else Path(os.path.commonpath(
        [str(Path(r).resolve().parent) for r in runs]))  # fmt: skip
    targets = [folder / "compare.md", folder / "compare.png"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise DfkdError(f"{', '.join(existing)} exist(s); pass --overwrite or choose --out")
    check_writable(folder)
    text = table(rows)
    png = plot(rows)
    atomic_write_text(targets[0], text + "\n")
    written = [str(targets[0])]
    if png is not None:
        atomic_write_bytes(targets[1], png)
        written.append(str(targets[1]))
    return {"table": text, "runs": rows, "written": written, "plotted": png is not None}
