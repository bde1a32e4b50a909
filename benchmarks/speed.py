"""Accuracy against time: every data-free method (and KD with the real data, the ceiling) on one
teacher per dataset, with the student's evaluation curve against wall-clock seconds.

The teacher is dfkd's own ``lenet5`` of the teacher zoo (``benchmarks/zoo.py``), the student
``lenet5_half``, seed 0, each method's registered preset for the dataset (or ``--time-budget``),
a statistics file where the method needs one and the teacher has no BatchNorm. Figures: the
final test-split accuracy (no checkpoint selection) and its share of the teacher's, the loop's
wall time, and the first wall time at which an evaluation reached 95 % and 98 % of the
teacher's accuracy.

    python benchmarks/speed.py [--datasets mnist10k fashion-mnist] [--methods ...]
                               [--time-budget 10m] [--plugins ema ...] [--rerun]

Each cell's row is kept beside its run (``--out``/DATASET/METHOD.json) and not run again
unless ``--rerun``; processes may share the work. After every cell the results are rebuilt
into ``benchmarks/results/speed.{json,md}`` (committed rows stay where no run under ``--out``
replaces them) and, when matplotlib is installed (``pip install
'dfkd[plots]'``), one picture per dataset, ``speed_DATASET.svg``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch
from common import header, pct, results_doc, run_meta
from zoo import zoo_teacher
from zoo_distill import DATA_FREE, needs_stats, stats_file

import dfkd
from dfkd.io.files import atomic_write_text
from dfkd.methods import METHODS

STUDENT = "lenet5_half"
DATASETS = ["mnist10k", "fashion-mnist"]
SHARES = (0.95, 0.98)
#: the equal-time comparison: each method's accuracy at its last evaluation by these seconds
AT_TIMES = (30, 60, 120, 300)
#: every data-free method, variants (``fast-2``, ``fast-10``) included
ALL_DATA_FREE = [m for m in METHODS.names() if METHODS.get(m).data_free]


def label(method: str, plugins: list[str]) -> str:
    """A method and the plug-ins on it, as the table names them: ``nayer +ema``."""
    return " ".join([method, *(f"+{p}" for p in plugins)])


def cell_name(method: str, budget: str | None, plugins: list[str] | None = None) -> str:
    """The file stem of a cell's row and run folder: the method, its plug-ins and its budget."""
    stem = re.sub(r"[^\w.@+-]+", "_", label(method, plugins or []).replace(" ", ""))
    return stem if budget is None else f"{stem}@{budget}"


def time_to(curve: list[list[float]], target: float) -> float | None:
    """The first wall time of ``curve`` (``[seconds, accuracy]`` pairs) at which the accuracy
    reached ``target``; ``None`` if it never did."""
    return next((t for t, acc in curve if acc >= target), None)


def run_cell(method: str, dataset: str, args: argparse.Namespace) -> dict:
    """Distil the dataset's teacher with one method; the row, with its evaluation curve."""
    teacher = zoo_teacher("lenet5", dataset, Path(args.zoo))
    with_stats = method != "kd" and needs_stats(method, dataset, teacher)
    out = Path(args.out) / dataset / cell_name(method, args.time_budget, args.plugins)
    m = dfkd.distill(teacher, STUDENT, method, dataset, out=out, plugins=args.plugins,
                     overwrite=True, stats=stats_file(teacher, dataset) if with_stats else None,
                     time_budget=args.time_budget, progress=False)  # fmt: skip
    curve = [[h["wall_s"], h["student_accuracy"]] for h in m["history"]]
    t_acc = m["teacher_accuracy"]
    return {
        "dataset": dataset,
        "method": method,
        "plugins": args.plugins,
        "teacher_accuracy": t_acc,
        "student_accuracy": m["student_accuracy"],
        "acc_last5": m["acc_last5"],
        "percent_of_teacher": 100 * m["student_accuracy"] / t_acc,
        "wall_s": m["wall_s"],
        "rounds": m["rounds"],
        "steps": m["steps"],
        "curve": curve,
        **{f"time_to_{round(100 * s)}": time_to(curve, s * t_acc) for s in SHARES},
        "stats_file": with_stats,
        "time_budget": args.time_budget,
        "threads": torch.get_num_threads(),
        "command": " ".join(["python benchmarks/speed.py", *sys.argv[1:]]),
    }


def at_time(curve: list[list[float]], seconds: float) -> float | None:
    """The accuracy of the last evaluation of ``curve`` at or before ``seconds``."""
    seen = [acc for t, acc in curve if t <= seconds]
    return seen[-1] if seen else None


def table(cells: list[dict]) -> list[str]:
    """The markdown rows of one dataset."""
    at = " ".join(f"| at {t} s" for t in AT_TIMES)
    lines = [
        "| method | budget | student acc | last5 | % of teacher | wall s | to 95 % of teacher (s) "
        f"| to 98 % (s) {at} | rounds | stats |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(AT_TIMES) + "---|---|",
    ]
    for c in cells:
        to = [c["time_to_95"], c["time_to_98"]]
        accs = [at_time(c["curve"], t) for t in AT_TIMES]
        lines.append(
            f"| {label(c['method'], c.get('plugins', []))} | {c['time_budget'] or 'preset'} "
            f"| {pct(c['student_accuracy'])} | {pct(c['acc_last5'])} "
            f"| {c['percent_of_teacher']:.2f} | {c['wall_s']:.0f} "
            + " ".join(f"| {'–' if t is None else f'{t:.0f}'}" for t in to)
            + "".join(f" | {'–' if a is None else pct(a)}" for a in accs)
            + f" | {c['rounds']} | {'yes' if c['stats_file'] else 'no'} |"
        )
    return lines


def teacher_heading(cells: list[dict]) -> str:
    """``teacher X %``, or the range when rows were measured on teachers trained apart."""
    accs = sorted({pct(c["teacher_accuracy"]) for c in cells})
    if len(accs) == 1:
        return f"teacher {accs[0]} %"
    return f"teachers {accs[0]}–{accs[-1]} %, retrained between rows: each row's % is of its own"


def markdown(doc: dict) -> str:
    lines = header(
        "Accuracy against time",
        doc["meta"],
        f"Teacher: the zoo's `lenet5`; student `{STUDENT}`, seed 0, each method's registered "
        "preset (or the budget shown); a statistics file where a method needs one and the "
        "teacher has no BatchNorm. Final test-split accuracy (no checkpoint selection); `wall "
        "s` = the loop's wall time; `to 95 %` = the loop's wall time at the first evaluation "
        "that reached 95 % of the teacher's accuracy ('–': none did); `at N s` = the accuracy of "
        "the last evaluation by N seconds of the loop (every evaluation uses the whole test "
        "split), the comparison at equal wall time. `kd` uses the real training "
        "data (the ceiling).",
    )
    for ds, cells in doc["rows"].items():
        lines += [f"## {ds} ({teacher_heading(cells)})", "", *table(cells), ""]
        if (Path(__file__).parent / "results" / f"speed_{ds}.svg").exists():
            lines += [f"![{ds}](speed_{ds}.svg)", ""]
    return "\n".join(lines)


def plot(ds: str, cells: list[dict], path: Path) -> bool:
    """Student accuracy against seconds, one line per method, the teacher and KD as horizontal
    lines; ``False`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for c in cells:
        if c["method"] == "kd":
            ax.axhline(100 * c["student_accuracy"], color="grey", ls=":", label="KD, real data")
            continue
        t, acc = zip(*c["curve"], strict=True) if c["curve"] else ((), ())
        name = label(c["method"], c.get("plugins", []))
        ax.plot(t, [100 * a for a in acc], marker=".", label=name)
    ax.axhline(100 * cells[0]["teacher_accuracy"], color="black", ls="--", label="teacher")
    ax.set(xlabel="wall-clock seconds (loop)", ylabel="student test accuracy (%)",
           title=f"{ds}: accuracy against time", ylim=(0, 100))  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, format="svg")
    plt.close(fig)
    return True


def key(cell: dict) -> tuple:
    """What tells two cells of a dataset apart: method, budget and plug-ins."""
    return cell["method"], cell["time_budget"], tuple(cell.get("plugins", []))


def publish(args: argparse.Namespace) -> None:
    """Rebuild ``speed.{json,md}`` (and the pictures) from every cell's row: the rows under
    ``--out`` over the committed ones (a fresh checkout reruns some cells without losing the
    others)."""
    res, path, doc = results_doc(args.results, "speed")
    doc["meta"] = run_meta("python benchmarks/speed.py")
    order = ["kd", *DATA_FREE]
    committed, doc["rows"] = doc.get("rows", {}), {}
    for ds in DATASETS:
        by_key = {key(c): c for c in committed.get(ds, [])}
        for p in (Path(args.out) / ds).glob("*.json"):
            c = json.loads(p.read_text())
            by_key[key(c)] = c
        cells = list(by_key.values())
        if cells:
            cells.sort(key=lambda c: (order.index(c["method"]) if c["method"] in order else 99,
                                      c["time_budget"] or "", c.get("plugins", [])))  # fmt: skip
            doc["rows"][ds] = cells
            plot(ds, cells, res / f"speed_{ds}.svg")
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    atomic_write_text(res / "speed.md", markdown(doc) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    ap.add_argument("--methods", nargs="+", default=["kd", *DATA_FREE],
                    choices=["kd", *ALL_DATA_FREE])  # fmt: skip
    ap.add_argument("--time-budget", default=None, help="per run, e.g. 10m (default: presets)")
    ap.add_argument("--plugins", nargs="*", default=[], help="plug-ins on every run, e.g. ema")
    ap.add_argument("--rerun", action="store_true", help="run cells that already have a row")
    ap.add_argument("--zoo", default="runs/zoo")
    ap.add_argument("--out", default="runs/bench-speed")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    for ds in args.datasets:
        for method in args.methods:
            row = Path(args.out) / ds / f"{cell_name(method, args.time_budget, args.plugins)}.json"
            if row.exists() and not args.rerun:
                continue
            cell = run_cell(method, ds, args)
            atomic_write_text(row, json.dumps(cell, indent=2) + "\n")
            print(f"{ds} {label(method, args.plugins)}: {cell['percent_of_teacher']:.1f} % of "
                  f"the teacher in {cell['wall_s']:.0f} s", flush=True)  # fmt: skip
            publish(args)


if __name__ == "__main__":
    main()
