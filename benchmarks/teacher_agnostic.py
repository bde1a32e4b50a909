"""Teacher-agnostic benchmark (TA-DFKD's claim): how stable is each data-free method across
teachers?

Trains five teachers per dataset — ``lenet5`` (BatchNorm) with seeds 0, 1, 2 and an MLP with
BatchNorm (784→256→128) with seeds 0, 1 — and distils each into ``lenet5_half`` with ``dafl``,
``dfq``, ``dfad``, ``ta_dfkd``, ``fast``, ``nayer`` and ``cmi`` under the same budget: the
dataset's CPU preset of each method with its number of rounds set so that every method takes the
same number of student steps of the same batch size (after its warm-up rounds, if any).
Reports per method the mean, minimum and across-teacher standard deviation of the final
accuracy, the mean of ``acc_last5``, and a plot of the accuracy curves.

    python benchmarks/teacher_agnostic.py [--datasets mnist10k fashion-mnist] [--steps 1500]
                                          [--methods ...]

With ``--methods`` only those run; the committed rows of the others are kept (same teachers and
step budget required).

Writes ``benchmarks/results/teacher_agnostic.{json,md}`` and one SVG plot per dataset; a rerun
of some datasets replaces only their rows. Teachers and finished runs (same method, same number
of rounds) already under ``--out`` are reused, so a cut-off run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from common import (
    TEACHER_EPOCHS,
    budget_overrides,
    budget_rounds,
    finished_run,
    header,
    results_doc,
    run_meta,
)

import dfkd

TEACHERS = [
    ("lenet5", 0, {}),
    ("lenet5", 1, {}),
    ("lenet5", 2, {}),
    ("mlp", 0, {"bn": True}),
    ("mlp", 1, {"bn": True}),
]
EPOCHS = TEACHER_EPOCHS
METHODS = ["dafl", "dfq", "dfad", "ta_dfkd", "fast", "nayer", "cmi"]
STUDENT = "lenet5_half"
COLORS = {"dafl": "#1f77b4", "dfq": "#ff7f0e", "dfad": "#2ca02c", "ta_dfkd": "#d62728",
          "fast": "#9467bd", "nayer": "#8c564b", "cmi": "#e377c2"}  # fmt: skip


def teacher_name(model: str, seed: int) -> str:
    return f"{model}-s{seed}"


def svg_plot(curves: dict[str, list[list[tuple[int, float]]]], title: str) -> str:
    """Accuracy (y) against student steps (x): one thin line per teacher, coloured by method."""
    w, h, pad = 640, 400, 50
    xs = [s for runs in curves.values() for run in runs for s, _ in run]
    ys = [a for runs in curves.values() for run in runs for _, a in run]
    x_max, y_min = max(xs), min(0.5, min(ys))

    def px(s: float, a: float) -> str:
        x = pad + (w - 2 * pad) * s / x_max
        y = h - pad - (h - 2 * pad) * (a - y_min) / (1 - y_min)
        return f"{x:.1f},{y:.1f}"

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="20" text-anchor="middle">{title}</text>',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
        f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">student steps</text>',
    ]
    for k in range(6):
        a = y_min + (1 - y_min) * k / 5
        x0, y0 = px(0, a).split(",")
        out.append(f'<text x="{float(x0) - 6}" y="{float(y0) + 4}" text-anchor="end">'
                   f"{100 * a:.0f}%</text>")  # fmt: skip
    for i, (method, runs) in enumerate(curves.items()):
        color = COLORS.get(method, "black")
        for run in runs:
            pts = " ".join(px(s, a) for s, a in run)
            out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" '
                       'stroke-width="1.2" opacity="0.8"/>')  # fmt: skip
        out.append(f'<text x="{w - pad - 80}" y="{h - pad - 20 - 16 * i}" fill="{color}">'
                   f"{method}</text>")  # fmt: skip
    out.append("</svg>")
    return "\n".join(out) + "\n"


def kept_runs(previous: dict | None, steps: int, methods: list[str]) -> dict[str, dict]:
    """The committed runs of the methods not run now, when they had the same step budget."""
    if not previous or previous.get("steps") != steps:
        return {}
    return {m: per for m, per in previous["runs"].items() if m not in methods}


def run_dataset(ds: str, out: Path, steps: int, res: Path, methods: list[str],
                previous: dict | None) -> dict:  # fmt: skip
    teachers = {}
    for model, seed, args in TEACHERS:
        name = teacher_name(model, seed)
        path = out / ds / "teachers" / name
        if (path / "teacher.json").exists():
            card = json.loads((path / "teacher.json").read_text())
        else:
            card = dfkd.train_teacher(ds, model, EPOCHS[ds], path, seed=seed, model_args=args,
                                      progress=False)  # fmt: skip
        teachers[name] = card["test_accuracy"]
        print(f"[{ds}] teacher {name}: {100 * card['test_accuracy']:.2f} %", flush=True)
    runs: dict[str, dict[str, dict]] = kept_runs(previous, steps, methods)
    if previous and runs and previous["teachers"] != teachers:
        raise SystemExit(f"[{ds}] the teachers differ from the committed ones; run every method")
    for method in methods:
        runs[method] = {}
        over, rounds = budget_overrides(method, ds, steps), budget_rounds(method, ds, steps)
        for name in teachers:
            run_dir = out / ds / method / name
            m = finished_run(run_dir, rounds) or dfkd.distill(
                out / ds / "teachers" / name, STUDENT, method, ds, out=run_dir, overrides=over,
                overwrite=True, progress=False)  # fmt: skip
            runs[method][name] = {
                "student_accuracy": m["student_accuracy"],
                "acc_last5": m["acc_last5"],
                "teacher_accuracy": teachers[name],
                "steps": m["steps"],
                "wall_s": round(m["wall_s"], 1),
                "curve": [(h["step"], h["student_accuracy"]) for h in m["history"]],
            }
            acc, last5 = 100 * m["student_accuracy"], 100 * m["acc_last5"]
            print(f"[{ds}] {method} on {name}: {acc:.2f} % (last5 {last5:.2f}) "
                  f"in {m['wall_s']:.0f} s", flush=True)  # fmt: skip
    summary = {}
    for method, per in runs.items():
        accs = [r["student_accuracy"] for r in per.values()]
        rel = [r["student_accuracy"] / r["teacher_accuracy"] for r in per.values()]
        summary[method] = {
            "mean": statistics.mean(accs),
            "min": min(accs),
            "std": statistics.stdev(accs),
            "last5_mean": statistics.mean(r["acc_last5"] for r in per.values()),
            "relative_mean": statistics.mean(rel),
            "relative_min": min(rel),
            "wall_s_mean": statistics.mean(r["wall_s"] for r in per.values()),
        }
    curves = {m: [per[n]["curve"] for n in per] for m, per in runs.items()}
    (res / f"teacher_agnostic_{ds}.svg").write_text(
        svg_plot(curves, f"{ds}: student accuracy, five teachers per method")
    )
    return {
        "dataset": ds,
        "teachers": teachers,
        "steps": steps,
        "overrides": {m: budget_overrides(m, ds, steps) for m in runs},
        "runs": runs,
        "summary": summary,
    }


def markdown(doc: dict) -> str:
    meta = doc["meta"]
    lines = [
        *header(
            "Teacher-agnostic benchmark",
            meta,
            f"Student `{STUDENT}`; teachers `lenet5` seeds 0–2 and an MLP with "
            "BatchNorm seeds 0–1; each method's CPU preset for the dataset with the same number of "
            "student steps. Final test-split evaluation (no checkpoint selection); `last5` = mean "
            "of "
            "the last five evaluations; std across the five teachers.",
        ),
    ]
    for ds, row in doc["rows"].items():
        t = ", ".join(f"{n} {100 * a:.2f}" for n, a in row["teachers"].items())
        lines += [
            f"## {ds} ({row['steps']} student steps per run)",
            "",
            f"Teachers (%): {t}.",
            "",
            "| method | mean | min | std | last5 mean | mean % of teacher | min % of teacher "
            "| s per run |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m, s in row["summary"].items():
            lines.append(
                f"| {m} | {100 * s['mean']:.2f} | {100 * s['min']:.2f} | {100 * s['std']:.2f} "
                f"| {100 * s['last5_mean']:.2f} | {100 * s['relative_mean']:.1f} "
                f"| {100 * s['relative_min']:.1f} | {s['wall_s_mean']:.0f} |"
            )
        lines += ["", "Per teacher (final %):", ""]
        names = list(row["teachers"])
        lines.append("| method | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for m, per in row["runs"].items():
            lines.append(f"| {m} | " + " | ".join(
                f"{100 * per[n]['student_accuracy']:.2f}" for n in names) + " |")  # fmt: skip
        lines += ["", f"![curves](teacher_agnostic_{ds}.svg)", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", choices=list(EPOCHS), default=list(EPOCHS))
    ap.add_argument("--steps", type=int, default=1500, help="student steps per run")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS,
                    help="run these; the committed rows of the others are kept")  # fmt: skip
    ap.add_argument("--out", default="runs/bench-teacher-agnostic")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    res, path, doc = results_doc(args.results, "teacher_agnostic")
    doc["meta"] = run_meta(
        "python benchmarks/teacher_agnostic.py"
        + ("" if args.steps == 1500 else f" --steps {args.steps}")
    )
    for ds in args.datasets:
        previous = doc["rows"].get(ds)
        doc["rows"][ds] = run_dataset(ds, Path(args.out), args.steps, res, args.methods, previous)
        path.write_text(json.dumps(doc, indent=2) + "\n")
        (res / "teacher_agnostic.md").write_text(markdown(doc) + "\n")
    print((res / "teacher_agnostic.md").read_text())


if __name__ == "__main__":
    main()
