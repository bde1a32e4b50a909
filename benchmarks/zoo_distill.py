"""Every data-free method on every zoo teacher (``benchmarks/zoo.py``), per dataset.

Each cell distils one zoo teacher into ``lenet5_half`` with one method's registered preset,
seed 0, with a statistics file collected from the teacher's training data where the method
needs one and the teacher has no BatchNorm (what a data owner ships beside such a teacher).
``--time-budget`` sizes every run to a wall-clock budget on this machine. Figures: the final
test-split accuracy as a share of the teacher's (no checkpoint selection), wall time, and the
class coverage and balance of what the student was distilled on.

    python benchmarks/zoo_distill.py [--datasets mnist10k fashion-mnist] [--teachers ...]
                                     [--methods ...] [--time-budget 2m] [--rerun]

Each cell's row is kept beside its run (``--out``/DATASET/TEACHER/METHOD.json); a cell with
a row for the same budget is not run again (an interrupted run resumes; ``--rerun`` forces it).
Several processes may share the work (e.g. one per teacher, ``OMP_NUM_THREADS=1`` each on a
2-core machine): as each process ends, the results are rebuilt from all rows into
``benchmarks/results/zoo_distill.{json,md}`` (the committed rows stay where no run under
``--out`` replaces them; ``--name``; a second table, e.g. longer budgets,
takes its own ``--out`` and ``--name``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from common import class_ratios, header, pct, results_doc, run_meta, worst_class
from zoo import ZOO, zoo_teacher

import dfkd
from dfkd.config import safe_load
from dfkd.engine.objective import needs_of
from dfkd.engine.parts import build_parts
from dfkd.errors import DfkdError
from dfkd.io.files import atomic_write_text
from dfkd.methods import METHODS
from dfkd.teachers.taps import bn_layers

STUDENT = "lenet5_half"
DATA_FREE = [
    m for m in METHODS.names() if METHODS.get(m).data_free and not METHODS.get(m).variant_of
]
TEACHERS = [*ZOO, "lenet5"]
DATASETS = ["mnist10k", "fashion-mnist"]


def needs_stats(method: str, dataset: str, teacher: Path) -> bool:
    """Whether ``method`` needs a statistics file with this teacher."""
    needs = needs_of(build_parts(dfkd.resolve_config(method, dataset)).synth_terms)
    if "teacher_layers" in needs:
        return True
    model, _ = dfkd.load_model(teacher)
    return "teacher_stats" in needs and not bn_layers(model)


def stats_file(teacher: Path, dataset: str) -> Path:
    """The teacher's statistics on its training split (collected once)."""
    path = teacher / "stats.safetensors"
    if not path.exists():
        dfkd.collect_teacher_stats(teacher, dataset, None, path)
    return path


def run_cell(method: str, teacher_name: str, dataset: str, args: argparse.Namespace) -> dict:
    """Distil one zoo teacher with one method; the row of the results table (a budget shorter
    than one round of the method on this teacher is a row too: it scores 0)."""
    teacher = zoo_teacher(teacher_name, dataset, Path(args.zoo))
    with_stats = needs_stats(method, dataset, teacher) and not args.no_stats
    out = Path(args.out) / dataset / teacher_name / method
    stats = stats_file(teacher, dataset) if with_stats else None
    row = {"dataset": dataset, "teacher": teacher_name, "method": method,
           "stats_file": with_stats, "time_budget": args.time_budget,
           "plugins": preset_plugins(method, dataset),
           "distill_options": preset_distill_options(method, dataset),
           "replay_mix": dfkd.resolve_config(method, dataset).source.args.get("replay_mix"),
           "threads": torch.get_num_threads(),
           "command": " ".join(["python benchmarks/zoo_distill.py", *sys.argv[1:]])}  # fmt: skip
    t0 = time.perf_counter()
    try:
        m = dfkd.distill(teacher, STUDENT, method, dataset, out=out, overwrite=True,
                         stats=stats, time_budget=args.time_budget, progress=False)  # fmt: skip
    except DfkdError as e:  # the budget does not fit one round, or the method cannot apply
        return {**row, "note": str(e), "percent_of_teacher": 0.0,
                "call_s": time.perf_counter() - t0}  # fmt: skip
    free = (m.get("statistics") or {}).get("form") == "none"
    source = dfkd.resolve_config(method, dataset).statistics_free_source if free else {}
    return {**row, **figures(m), "free_source": source, "call_s": time.perf_counter() - t0}


def preset_plugins(method: str, dataset: str) -> list[str]:
    """The plug-ins of the method's preset (presets change; the row keeps what it ran with)."""
    return [p.name for p in dfkd.resolve_config(method, dataset).plugins]


def preset_distill_options(method: str, dataset: str) -> dict[str, dict]:
    """The options of the preset's distillation terms other than weight and temperature."""
    terms = dfkd.resolve_config(method, dataset).distill_terms
    return {n: {k: v for k, v in a.items() if k not in ("weight", "T")} for n, a in terms.items()}


def figures(m: dict) -> dict:
    """What the table shows of a finished run's metrics."""
    k = len(m["synthetic_class_histogram"])
    return {
        "teacher_accuracy": m["teacher_accuracy"],
        "student_accuracy": m["student_accuracy"],
        "acc_last5": m["acc_last5"],
        "percent_of_teacher": 100 * m["student_accuracy"] / m["teacher_accuracy"],
        "wall_s": m["wall_s"],
        "rounds": m["rounds"],
        "steps": m["steps"],
        "coverage": 1 - len(m["uncovered_classes"]) / k,
        "balance": m["class_balance"],
        "budget": m.get("budget"),
        "budget_s": m.get("budget", {}).get("budget_s"),
        "precision": m["precision"].split(":")[0],
        "class_accuracy": m.get("class_accuracy"),
        "teacher_class_accuracy": m.get("teacher_class_accuracy"),
    }


def from_run(cell: dict, run: Path) -> dict:
    """``cell`` with what its run's own outputs under ``run`` record and the row does not
    (rows written before these fields were): the per-class accuracies from its
    ``metrics.json`` and the blended replays from its ``config.yaml`` — only when that run is
    this row's (the same student accuracy)."""
    metrics, config = run / "metrics.json", run / "config.yaml"
    if "note" in cell or not metrics.exists() or not config.exists():
        return cell
    m = json.loads(metrics.read_text())
    if m.get("student_accuracy") != cell.get("student_accuracy"):
        return cell
    args = (safe_load(config.read_text()).get("source") or {}).get("args") or {}
    found = {"class_accuracy": m.get("class_accuracy"),
             "teacher_class_accuracy": m.get("teacher_class_accuracy"),
             "replay_mix": args.get("replay_mix")}  # fmt: skip
    return {**cell, **{k: v for k, v in found.items() if cell.get(k) is None and v is not None}}


def per_class(cells: list[dict]) -> list[str]:
    """The student's accuracy on each class as a multiple of the teacher's, per row that
    records it, its worst class first."""
    rows = [c for c in cells if c.get("class_accuracy") and c.get("teacher_class_accuracy")]
    if not rows:
        return []
    k = len(rows[0]["class_accuracy"])
    lines = ["| teacher | method | budget | worst class (× teacher) | "
             + " | ".join(str(i) for i in range(k)) + " |",
             "|---" * (k + 4) + "|"]  # fmt: skip
    for c in rows:
        ratio = class_ratios(c["class_accuracy"], c["teacher_class_accuracy"])
        worst = worst_class(ratio)
        cols = " | ".join("–" if r is None else f"{r:.2f}" for r in ratio)
        lines.append(f"| {c['teacher']} | {c['method']} | {c['time_budget']} "
                     f"| {worst} ({ratio[worst]:.2f}) | {cols} |")  # fmt: skip
    return lines


def summary(cells: list[dict]) -> list[str]:
    """Per method: min and mean over teachers of the share of the teacher's accuracy."""
    lines = ["| method | min % of teacher | mean % of teacher | worst teacher | mean call s "
             "| max call / budget | no student (notes) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for method in DATA_FREE:
        mine = [c for c in cells if c["method"] == method]
        if not mine:
            continue
        worst = min(mine, key=lambda c: c["percent_of_teacher"])
        mean = sum(c["percent_of_teacher"] for c in mine) / len(mine)
        call = sum(c["call_s"] for c in mine) / len(mine)
        over = [c["call_s"] / c["budget_s"] for c in mine if c.get("budget_s")]
        short = sum("note" in c for c in mine)
        lines.append(f"| {method} | {worst['percent_of_teacher']:.1f} | {mean:.1f} "
                     f"| {worst['teacher']} | {call:.0f} | "
                     f"{f'{max(over):.3f}' if over else '–'} | {short} |")  # fmt: skip
    return lines


def pivot(cells: list[dict]) -> list[str]:
    """Teacher × method: % of the teacher's accuracy ('n/a': the method does not apply to the
    teacher; a budget shorter than one round scores 0), and each teacher's best."""
    methods = [m for m in DATA_FREE if any(c["method"] == m for c in cells)]
    by = {(c["teacher"], c["method"]): c for c in cells}
    lines = ["| teacher | " + " | ".join(f"`{m}`" for m in methods) + " | best |",
             "|---" * (len(methods) + 2) + "|"]  # fmt: skip
    for t in [t for t in TEACHERS if any(c["teacher"] == t for c in cells)]:
        vals = [by.get((t, m)) for m in methods]
        shown = ["–" if c is None else "n/a" if "note" in c and "budget" not in c["note"]
                 else f"{c['percent_of_teacher']:.1f}" for c in vals]  # fmt: skip
        best = max((c["percent_of_teacher"] for c in vals if c is not None), default=0.0)
        lines.append(f"| `{t}` | " + " | ".join(shown) + f" | **{best:.1f}** |")
    return lines


def extras(cell: dict) -> str:
    """A row's plug-ins, distillation-term options, the preset's blended replays and the source
    options of a statistics-free form as the table shows them (rows from before
    ``distill_options`` was recorded ran before any such option existed; before
    ``free_source``, before any such source option; before ``replay_mix``, without it)."""
    if "plugins" not in cell:
        return "–"
    shown = [f"`{p}`" for p in cell["plugins"]]
    for term, options in cell.get("distill_options", {}).items():
        shown += [f"{term} `{k}: {v}`" for k, v in options.items()]
    shown += [f"source `{k}: {v}`" for k, v in cell.get("free_source", {}).items()]
    if cell.get("replay_mix") not in (None, "none"):
        shown.append(f"source `replay_mix: {cell['replay_mix']}`")
    return ", ".join(shown) or "none"


def stats_cost(cells: list[dict], with_file: list[dict]) -> list[str]:
    """This table's rows (no statistics file) beside the same teacher, method, budget and preset
    run with one (``zoo_distill.json``; a row of an earlier preset is no pair): the cost of not
    having statistics, in points."""
    by = {(c["teacher"], c["method"], c["time_budget"]): c for c in with_file if "note" not in c}
    lines = ["| teacher | method | budget | no statistics file | with one | cost (points) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for c in cells:
        other = by.get((c["teacher"], c["method"], c["time_budget"]))
        if other is None:
            continue
        ours = extras({**c, "free_source": {}})  # the statistics-free form is the same preset's
        same = {extras(other), ours} <= {"–", "none"} or extras(other) == ours
        if "note" in c or not other["stats_file"] or not same:
            continue
        without, with_ = c["percent_of_teacher"], other["percent_of_teacher"]
        lines.append(f"| {c['teacher']} | {c['method']} | {c['time_budget']} | {without:.1f} "
                     f"| {with_:.1f} | {with_ - without:.1f} |")  # fmt: skip
    return lines if len(lines) > 2 else []


def markdown(doc: dict, with_file: dict[str, list[dict]] | None = None) -> str:
    lines = header(
        "Data-free methods on the teacher zoo",
        doc["meta"],
        f"Student `{STUDENT}`, seed 0, each method's registered preset (sized by "
        "`--time-budget` where a budget is shown); a statistics file collected on the training "
        "split where the method needs one and the teacher has no BatchNorm. Final test-split "
        "accuracy (no checkpoint selection) as % of the teacher's; `call s` = the whole "
        "`dfkd.distill` call (calibration included); `coverage` = share of classes given at "
        "least a quarter of a fair share of what the student was distilled on (teacher's "
        "labels), `balance` = its normalised entropy; `extras` = the preset's plug-ins and "
        "distillation-term options beyond weight and T, the preset's blended replays "
        "(`replay_mix`), and the source options of the statistics-free form where the run "
        "took it (–: not recorded, a row from before the column); `precision` = what "
        "`fabric.precision: auto` settled to (rows from before it "
        "ran in 32-true, the only default then).",
    )
    for ds, cells in doc["rows"].items():
        lines += [f"## {ds}", "", *summary(cells), "", *pivot(cells), "",
                  "| teacher | method | budget | teacher acc | student acc | % of teacher "
                  "| last5 | call s | rounds | coverage | balance | stats | extras | precision "
                  "| threads |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in cells:
            if "note" in c:
                lines.append(
                    f"| {c['teacher']} | {c['method']} | {c['time_budget']} | – | – "
                    f"| 0 | – | {c['call_s']:.0f} | 0 | – | – | – | {extras(c)} "
                    f"| {c.get('precision', '32-true')} | {c['threads']} |"
                )
                continue
            lines.append(
                f"| {c['teacher']} | {c['method']} | {c['time_budget'] or 'preset'} "
                f"| {pct(c['teacher_accuracy'])} | {pct(c['student_accuracy'])} "
                f"| {c['percent_of_teacher']:.1f} | {pct(c['acc_last5'])} "
                f"| {c['call_s']:.0f} | {c['rounds']} | {c['coverage']:.2f} "
                f"| {c['balance']:.3f} | {'yes' if c['stats_file'] else 'no'} | {extras(c)} "
                f"| {c.get('precision', '32-true')} | {c['threads']} |"
            )
        lines.append("")
        cost = stats_cost(cells, (with_file or {}).get(ds, []))
        if cost:
            lines += ["What the statistics file is worth (the same cell in `zoo_distill.md`, "
                      "run with one):", "", *cost, ""]  # fmt: skip
        classes = per_class(cells)
        if classes:
            lines += ["Per class, the student's test accuracy as a multiple of the teacher's "
                      "(rows whose run recorded it):", "", *classes, ""]  # fmt: skip
        notes = [f"- {c['teacher']} / {c['method']}: {c['note']}" for c in cells if "note" in c]
        lines += ["No student (scored 0):", "", *notes, ""] if notes else []
    return "\n".join(lines)


def collect(out: Path, committed: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Every cell's row, per dataset, in zoo and method order: the rows under ``out`` over the
    committed ones (a fresh checkout reruns some cells without losing the others)."""
    order = {(t, m): i for i, (t, m) in enumerate((t, m) for t in TEACHERS for m in DATA_FREE)}
    rows: dict[str, list[dict]] = {}
    for ds in DATASETS:
        cells = {(c["teacher"], c["method"]): c for c in committed.get(ds, [])}
        for p in (out / ds).glob("*/*.json"):
            c = from_run(json.loads(p.read_text()), p.with_suffix(""))
            cells[c["teacher"], c["method"]] = c
        if cells:
            rows[ds] = sorted(cells.values(), key=lambda c: order.get(
                (c["teacher"], c["method"]), 1 << 30))  # fmt: skip
    return rows


def publish(args: argparse.Namespace, command: str) -> None:
    """Rebuild ``NAME.{json,md}`` from every row (this and other processes', and the committed
    ones no run under ``--out`` replaces)."""
    res, path, doc = results_doc(args.results, args.name)
    doc["meta"] = run_meta(command)
    doc["rows"] = collect(Path(args.out), doc.get("rows", {}))
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    base = res / "zoo_distill.json"
    with_file = json.loads(base.read_text())["rows"] if args.no_stats and base.exists() else None
    atomic_write_text(res / f"{args.name}.md", markdown(doc, with_file) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    ap.add_argument("--teachers", nargs="+", default=TEACHERS, choices=TEACHERS)
    ap.add_argument("--methods", nargs="+", default=DATA_FREE, choices=DATA_FREE)
    ap.add_argument("--time-budget", default=None, help="per run, e.g. 2m (default: presets)")
    ap.add_argument("--rerun", action="store_true", help="run cells that already have a row")
    ap.add_argument("--zoo", default="runs/zoo")
    ap.add_argument("--out", default="runs/zoo-distill")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--name", default="zoo_distill", help="results/NAME.{json,md}")
    ap.add_argument(
        "--no-stats",
        action="store_true",
        help="no statistics file for any cell: the BN-free teachers' statistics-free "
        "case (a method that cannot run without one is a row with a note)",
    )
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    budget = f" --time-budget {args.time_budget}" if args.time_budget else ""
    budget += " --no-stats" if args.no_stats else ""
    for ds in args.datasets:
        for teacher in args.teachers:
            for method in args.methods:
                row = Path(args.out) / ds / teacher / f"{method}.json"
                old = json.loads(row.read_text()) if row.exists() else None
                if old and old["time_budget"] == args.time_budget and not args.rerun:
                    continue
                cell = run_cell(method, teacher, ds, args)
                atomic_write_text(row, json.dumps(cell, indent=2) + "\n")
                print(f"{ds} {teacher} {method}: {cell['percent_of_teacher']:.1f} % of the "
                      f"teacher in {cell['call_s']:.0f} s", flush=True)  # fmt: skip
    publish(args, "python benchmarks/zoo_distill.py" + budget)  # every kept row, run or not


if __name__ == "__main__":
    main()
