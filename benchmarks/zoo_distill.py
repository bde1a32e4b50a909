"""Every data-free method on every zoo teacher (``benchmarks/zoo.py``), per dataset.

Each cell distils one zoo teacher into ``lenet5_half`` with one method's registered preset,
seed 0, with a statistics file collected from the teacher's training data where the method
needs one and the teacher has no BatchNorm (what a data owner ships beside such a teacher).
``--time-budget`` sizes every run to a wall-clock budget on this machine. Figures: the final
test-split accuracy as a share of the teacher's (no checkpoint selection), wall time, and the
class coverage and balance of what the student was distilled on.

    python benchmarks/zoo_distill.py [--datasets mnist10k fashion-mnist] [--teachers ...]
                                     [--methods ...] [--time-budget 2m] [--rerun]

Cells already in ``benchmarks/results/zoo_distill.json`` with the same budget are kept (so an
interrupted run resumes); ``--rerun`` runs them again. Writes ``zoo_distill.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
from common import header, pct, results_doc, run_meta
from zoo import ZOO, zoo_teacher

import dfkd
from dfkd.engine.objective import needs_of
from dfkd.engine.parts import build_parts
from dfkd.methods import METHODS
from dfkd.teachers.taps import bn_layers

STUDENT = "lenet5_half"
DATA_FREE = [m for m in METHODS.names() if METHODS.get(m).data_free]
TEACHERS = [*ZOO, "lenet5"]


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


def coverage(hist: list[float]) -> tuple[float, float]:
    """``(classes with at least a quarter of a fair share, normalised entropy)``."""
    fair = 1 / len(hist)
    covered = sum(p >= fair / 4 for p in hist) / len(hist)
    entropy = -sum(p * math.log(p) for p in hist if p > 0) / math.log(len(hist))
    return covered, entropy


def run_cell(method: str, teacher_name: str, dataset: str, args: argparse.Namespace) -> dict:
    """Distil one zoo teacher with one method; the row of the results table."""
    teacher = zoo_teacher(teacher_name, dataset, Path(args.zoo))
    with_stats = needs_stats(method, dataset, teacher)
    out = Path(args.out) / dataset / teacher_name / method
    extra = {"time_budget": args.time_budget} if args.time_budget else {}
    m = dfkd.distill(teacher, STUDENT, method, dataset, out=out, overwrite=True,
                     stats=stats_file(teacher, dataset) if with_stats else None,
                     progress=False, **extra)  # fmt: skip
    covered, balance = coverage(m["synthetic_class_histogram"])
    return {
        "teacher_accuracy": m["teacher_accuracy"],
        "student_accuracy": m["student_accuracy"],
        "acc_last5": m["acc_last5"],
        "percent_of_teacher": 100 * m["student_accuracy"] / m["teacher_accuracy"],
        "wall_s": m["wall_s"],
        "rounds": m["rounds"],
        "steps": m["steps"],
        "stats_file": with_stats,
        "coverage": covered,
        "balance": balance,
        "time_budget": args.time_budget,
        "command": " ".join(["python benchmarks/zoo_distill.py", *sys.argv[1:]]),
    }


def summary(rows: dict[str, dict]) -> list[str]:
    """Per method: min and mean over teachers of the share of the teacher's accuracy."""
    lines = ["| method | min % of teacher | mean % of teacher | worst teacher | mean wall s |",
             "|---|---|---|---|---|"]  # fmt: skip
    for method in DATA_FREE:
        cells = {t: r[method] for t, r in rows.items() if method in r}
        if not cells:
            continue
        shares = {t: c["percent_of_teacher"] for t, c in cells.items()}
        worst = min(shares, key=shares.__getitem__)
        mean_wall = sum(c["wall_s"] for c in cells.values()) / len(cells)
        lines.append(f"| {method} | {shares[worst]:.1f} | {sum(shares.values()) / len(shares):.1f}"
                     f" | {worst} | {mean_wall:.0f} |")  # fmt: skip
    return lines


def markdown(doc: dict) -> str:
    lines = header(
        "Data-free methods on the teacher zoo",
        doc["meta"],
        f"Student `{STUDENT}`, seed 0, each method's registered preset; a statistics file "
        "collected on the training split where the method needs one and the teacher has no "
        "BatchNorm. Final test-split accuracy (no checkpoint selection) as % of the teacher's; "
        "`coverage` = share of classes given at least a quarter of a fair share of what the "
        "student was distilled on (teacher's labels), `balance` = its normalised entropy.",
    )
    for ds, rows in doc["rows"].items():
        lines += [f"## {ds}", "", *summary(rows), "",
                  "| teacher | method | budget | teacher acc | student acc | % of teacher "
                  "| last5 | wall s | rounds | coverage | balance | stats |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for teacher, cells in rows.items():
            for method, c in cells.items():
                lines.append(
                    f"| {teacher} | {method} | {c['time_budget'] or 'preset'} "
                    f"| {pct(c['teacher_accuracy'])} | {pct(c['student_accuracy'])} "
                    f"| {c['percent_of_teacher']:.1f} | {pct(c['acc_last5'])} "
                    f"| {c['wall_s']:.0f} | {c['rounds']} | {c['coverage']:.2f} "
                    f"| {c['balance']:.3f} | {'yes' if c['stats_file'] else 'no'} |"
                )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["mnist10k", "fashion-mnist"])
    ap.add_argument("--teachers", nargs="+", default=TEACHERS, choices=TEACHERS)
    ap.add_argument("--methods", nargs="+", default=DATA_FREE, choices=DATA_FREE)
    ap.add_argument("--time-budget", default=None, help="per run, e.g. 2m (default: presets)")
    ap.add_argument("--rerun", action="store_true", help="run cells already in the results")
    ap.add_argument("--zoo", default="runs/zoo")
    ap.add_argument("--out", default="runs/zoo-distill")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    res, path, doc = results_doc(args.results, "zoo_distill")
    doc["meta"] = run_meta("python benchmarks/zoo_distill.py")
    for ds in args.datasets:
        rows = doc["rows"].setdefault(ds, {})
        for teacher in args.teachers:
            for method in args.methods:
                old = rows.get(teacher, {}).get(method)
                if old and old["time_budget"] == args.time_budget and not args.rerun:
                    continue
                cell = run_cell(method, teacher, ds, args)
                rows.setdefault(teacher, {})[method] = cell
                print(f"{ds} {teacher} {method}: {pct(cell['student_accuracy'])} % "
                      f"({cell['percent_of_teacher']:.1f} %) in {cell['wall_s']:.0f} s",
                      flush=True)  # fmt: skip
                path.write_text(json.dumps(doc, indent=2) + "\n")
                (res / "zoo_distill.md").write_text(markdown(doc) + "\n")
    print((res / "zoo_distill.md").read_text())


if __name__ == "__main__":
    main()
