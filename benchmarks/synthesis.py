"""What the synthetic data is, before and after the synthesis controls: zoo teachers distilled
with one method's preset (``before``) and with named variants of it, at a time budget, each row
with the student's share of the teacher, the target hit rate, the pool's class coverage, its
precision and recall against the real test images in the teacher's feature space, and the
student's worst class against the teacher's on that class; a per-class table and one picture of
accuracy and recall against time per dataset.

    python benchmarks/synthesis.py --datasets fashion-mnist --teachers vgg-bn resnet-bn \\
        --method fast --variants before after --time-budget 10m

Each cell's row is kept beside its run (``--out``/DATASET/TEACHER/METHOD-VARIANT-BUDGET.json),
so several processes (``OMP_NUM_THREADS=1`` each on a 2-core machine) may share the work; as
each ends, ``benchmarks/results/synthesis.{json,md}`` is rebuilt from every row (the committed
rows stay where no run under ``--out`` replaces them). The real test images only measure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from common import class_ratios, header, pct, results_doc, run_meta, worst_class
from zoo import zoo_teacher

import dfkd
from dfkd.io.files import atomic_write_text

STUDENT = "lenet5_half"
TEACHERS = ["lenet5", "resnet-bn", "vgg-bn", "vgg-bn-ls"]
DATASETS = ["mnist10k", "fashion-mnist"]
#: name: the overrides that make the variant, over the method's preset
VARIANTS: dict[str, list[str]] = {
    # the preset in float32, as every run computed before ``fabric.precision: auto``
    "before": ["fabric.precision=32-true"],
    # targets the teacher already leans to (no class over its share), the generator told each
    # image's target, and only images that hit it pooled
    "after": ["source.args.targets=balanced", "source.args.condition=2.0",
              "source.args.admit=hit", "fabric.precision=32-true"],
    # the preset in bfloat16 mixed precision (what ``auto`` settles to on a CPU with AMX)
    "bf16": ["fabric.precision=bf16-mixed"],
    # the controls of ``after`` in bfloat16: do they pay once a run has twice the rounds?
    "after-bf16": ["source.args.targets=balanced", "source.args.condition=2.0",
                   "source.args.admit=hit", "fabric.precision=bf16-mixed"],
    # the student replays pooled images blended in pairs and labelled by the teacher on the blend
    "mixup": ["source.args.replay_mix=mixup", "fabric.precision=bf16-mixed"],
    # ``mixup`` with class-balanced distillation at power 0.5: the classes the pool over-draws
    # (Fashion-MNIST's shirts) keep more of their weight, the rare ones get less
    "balance-half": ["source.args.replay_mix=mixup", "fabric.precision=bf16-mixed",
                     "plugins=[{name: class_balance, args: {power: 0.5}}]"],
}  # fmt: skip


def cell_path(out: Path, dataset: str, teacher: str, method: str, variant: str, budget: str,
              seed: int = 0) -> Path:  # fmt: skip
    """Where a cell's row is kept (seed 0 has no suffix)."""
    return (
        out / dataset / teacher / f"{method}-{variant}-{budget}{f'-s{seed}' if seed else ''}.json"
    )


def run_cell(args: argparse.Namespace, dataset: str, teacher_name: str, variant: str) -> dict:
    """Distil one zoo teacher with one variant; the row of the results table."""
    teacher = zoo_teacher(teacher_name, dataset, Path(args.zoo))
    out = cell_path(Path(args.out), dataset, teacher_name, args.method, variant,
                    args.time_budget, args.seed).with_suffix("")  # fmt: skip
    t0 = time.perf_counter()
    m = dfkd.distill(teacher, STUDENT, args.method, dataset, out=out, overwrite=True,
                     overrides=VARIANTS[variant], time_budget=args.time_budget,
                     seed=args.seed, progress=False)  # fmt: skip
    return {
        "dataset": dataset, "teacher": teacher_name, "method": args.method, "variant": variant,
        "seed": args.seed,
        "overrides": VARIANTS[variant], "time_budget": args.time_budget,
        "command": " ".join(["python benchmarks/synthesis.py", *sys.argv[1:]]),
        "threads": torch.get_num_threads(), "call_s": time.perf_counter() - t0,
        **figures(m),
    }  # fmt: skip


def figures(m: dict) -> dict:
    """What the tables show of a finished run's metrics."""
    s, t = m["class_accuracy"], m["teacher_class_accuracy"]
    ratios = class_ratios(s, t)
    worst = worst_class(ratios)
    curve = [{k: r.get(k) for k in ("wall_s", "student_accuracy", "synth_recall")}
             for r in m["history"]]  # fmt: skip
    return {
        "teacher_accuracy": m["teacher_accuracy"], "student_accuracy": m["student_accuracy"],
        "acc_last5": m["acc_last5"],
        "percent_of_teacher": 100 * m["student_accuracy"] / m["teacher_accuracy"],
        "rounds": m["rounds"], "wall_s": m["wall_s"], "precision": m["precision"].split(":")[0],
        **{k: m.get(k) for k in ("synth_hit_rate", "pool_coverage", "pool_balance",
                                 "synth_precision", "synth_recall", "pool_class_histogram",
                                 "synth_class_recall")},
        "class_accuracy": s, "teacher_class_accuracy": t,
        "worst_class": worst, "worst_class_ratio": ratios[worst], "curve": curve,
    }  # fmt: skip


def _f(v: float | None, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown(doc: dict) -> str:
    lines = header(
        "Synthesis before and after the controls",
        doc["meta"],
        f"Student `{STUDENT}`, seed 0, one method's preset (`before`) and its variants, sized "
        "by `--time-budget`. `% of teacher`: final test accuracy (no selection); `hit`: share "
        "of the last round's images the teacher assigns to their target; `coverage`: share of "
        "classes with at least a quarter of a fair share of the pool (teacher's argmax); "
        "`precision`/`recall`: the pool's newest 1,000 images against the first 1,000 test "
        "images in the teacher's penultimate features (k-NN manifolds, k = 3); `worst class`: "
        "the student's lowest accuracy on a class as a share of the teacher's on it; "
        "`computed in`: the run's precision (rows from before the column: 32-true). "
        "Variants: "
        + "; ".join(f"`{k}` = {' '.join(v) or 'the preset'}" for k, v in VARIANTS.items())
        + ".",
    )
    for ds, cells in doc["rows"].items():
        lines += [f"## {ds}", "",
                  "| teacher | method | variant | budget | seed | % of teacher | last5 % | hit "
                  "| coverage | precision | recall | worst class (× teacher) | rounds | call s "
                  "| computed in |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in cells:
            lines.append(
                f"| {c['teacher']} | {c['method']} | {c['variant']} | {c['time_budget']} "
                f"| {c.get('seed', 0)} | {c['percent_of_teacher']:.1f} | {pct(c['acc_last5'])} "
                f"| {_f(c['synth_hit_rate'])} | {_f(c['pool_coverage'])} "
                f"| {_f(c['synth_precision'])} | {_f(c['synth_recall'])} "
                f"| {c['worst_class']} ({c['worst_class_ratio']:.2f}) | {c['rounds']} "
                f"| {c['call_s']:.0f} | {c.get('precision', '32-true')} |"
            )
        lines += ["", "Per class: student accuracy as a share of the teacher's on the class "
                  "(the pool's share of the class in brackets).", "",
                  "| teacher | variant | budget | seed | " + " | ".join(
                      str(k) for k in range(len(cells[0]["class_accuracy"]))) + " |",
                  "|---|---|---|---|" + "---|" * len(cells[0]["class_accuracy"])]  # fmt: skip
        for c in cells:
            lines.append(f"| {c['teacher']} | {c['variant']} | {c['time_budget']} "
                         f"| {c.get('seed', 0)} | " + " | ".join(per_class(c)) + " |")  # fmt: skip
        lines.append("")
        if (Path(__file__).parent / "results" / f"synthesis_{ds}.svg").exists():
            lines += [f"![{ds}](synthesis_{ds}.svg)", ""]
    return "\n".join(lines)


def per_class(c: dict) -> list[str]:
    """Each class's student/teacher accuracy ratio, with the pool's share of the class."""
    hist = c["pool_class_histogram"] or [0] * len(c["class_accuracy"])
    total = max(1, sum(hist))
    return [f"{a / b:.2f} ({100 * h / total:.0f} %)"
            for a, b, h in zip(c["class_accuracy"], c["teacher_class_accuracy"], hist,
                               strict=True)]  # fmt: skip


def plot(cells: list[dict], path: Path) -> None:
    """Accuracy and recall against time, one line per cell (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for c in cells:
        label = f"{c['teacher']} {c['variant']} {c['time_budget']} s{c.get('seed', 0)}"
        pts = [(r["wall_s"], r["student_accuracy"], r["synth_recall"]) for r in c["curve"]]
        t = [p[0] for p in pts]
        axes[0].plot(t, [100 * p[1] for p in pts], marker=".", label=label)
        axes[1].plot(t, [100 * (p[2] or 0) for p in pts], marker=".", label=label)
    axes[0].set(xlabel="wall-clock seconds", ylabel="student test accuracy (%)")
    axes[1].set(xlabel="wall-clock seconds", ylabel="recall of the synthetic pool (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, format="svg", bbox_inches="tight")
    plt.close(fig)


def rank(c: dict) -> tuple:
    """A row's place: zoo order, then method, budget and variant."""
    order = TEACHERS.index(c["teacher"]) if c["teacher"] in TEACHERS else len(TEACHERS)
    return order, c["method"], c["time_budget"], c.get("seed", 0), c["variant"]


def cell_key(c: dict) -> tuple:
    """What makes a row one cell: teacher, method, variant, budget and seed."""
    return c["teacher"], c["method"], c["variant"], c["time_budget"], c.get("seed", 0)


def collect(out: Path, committed: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Every row, per dataset (the rows under ``out`` over the committed ones)."""
    rows: dict[str, list[dict]] = {}
    for ds in DATASETS:
        cells = {cell_key(c): c for c in committed.get(ds, [])}
        for p in (out / ds).glob("*/*.json"):
            c = json.loads(p.read_text())
            cells[cell_key(c)] = c
        if cells:
            rows[ds] = sorted(cells.values(), key=rank)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    ap.add_argument("--teachers", nargs="+", default=TEACHERS, choices=TEACHERS)
    ap.add_argument("--method", default="fast")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--time-budget", default="10m")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rerun", action="store_true", help="run cells that already have a row")
    ap.add_argument("--publish-only", action="store_true", help="rebuild the tables, run nothing")
    ap.add_argument("--zoo", default="runs/zoo")
    ap.add_argument("--out", default="runs/synthesis")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    for ds in [] if args.publish_only else args.datasets:
        for teacher in args.teachers:
            for variant in args.variants:
                path = cell_path(Path(args.out), ds, teacher, args.method, variant,
                                 args.time_budget, args.seed)  # fmt: skip
                if path.exists() and not args.rerun:
                    continue
                cell = run_cell(args, ds, teacher, variant)
                atomic_write_text(path, json.dumps(cell, indent=2) + "\n")
                print(f"{ds} {teacher} {variant} {args.time_budget}: "
                      f"{cell['percent_of_teacher']:.1f} % of the teacher, hit "
                      f"{_f(cell['synth_hit_rate'])}, recall {_f(cell['synth_recall'])}",
                      flush=True)  # fmt: skip
    res, path, doc = results_doc(args.results, "synthesis")
    doc["meta"] = run_meta("python benchmarks/synthesis.py")
    doc["rows"] = collect(Path(args.out), doc.get("rows", {}))
    for ds, cells in doc["rows"].items():
        try:
            plot(cells, res / f"synthesis_{ds}.svg")
        except ImportError:
            print("matplotlib missing: no picture (pip install 'dfkd[plots]')", file=sys.stderr)
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    atomic_write_text(res / "synthesis.md", markdown(doc) + "\n")


if __name__ == "__main__":
    main()
