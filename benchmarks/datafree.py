"""Data-free benchmark: every data-free method on MNIST-10k and Fashion-MNIST, on a CPU.

For each setting it trains (or reuses) the teacher, distils it into ``lenet5_half`` with
classical KD on the real training data (the ceiling), collects a statistics file from the
teacher's training data (what a data owner ships beside the teacher; used only by methods that
need one), and runs every data-free method with its registered preset for that dataset — no
overrides, seed 0. Every figure is the final evaluation on the test split (no checkpoint
selection); ``acc_last5`` is the mean of the last five evaluations.

    python benchmarks/datafree.py [--settings mnist10k fashion-mnist mnist10k-nobn]
                                  [--methods dfq dfad ...] [--out runs/bench-datafree]

Results merge into ``benchmarks/results/datafree.{json,md}`` (a rerun of a subset replaces only
its rows). A teacher already present under ``--out`` is reused (the recipe is deterministic).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from common import header, pct, results_doc, run_meta

import dfkd

STUDENT = "lenet5_half"
GENERATOR_METHODS = ["dfq", "dfad", "dafl"]
PIXEL_METHODS = ["bn_stats", "deepinversion", "spectral"]
# name: dataset, teacher model, teacher epochs, methods, which methods get the stats file
SETTINGS = {
    "mnist10k": ("mnist10k", "lenet5", 20, GENERATOR_METHODS + PIXEL_METHODS, {"spectral"}),
    "fashion-mnist": (
        "fashion-mnist",
        "lenet5",
        20,
        GENERATOR_METHODS + PIXEL_METHODS,
        {"spectral"},
    ),
    # a teacher without BatchNorm: generator methods with no statistics, matching methods with
    # a collected statistics file
    "mnist10k-nobn": (
        "mnist10k",
        "lenet5_nobn",
        20,
        ["dfad", "dafl", "bn_stats", "spectral"],
        {"bn_stats", "spectral"},
    ),
}
KEEP = (
    "student_accuracy",
    "acc_last5",
    "agreement",
    "steps",
    "rounds",
    "wall_s",
    "synthesis_s",
    "distill_s",
    "synthetic_class_histogram",
)


def balance(hist: list[float]) -> float:
    """Normalised entropy of the synthetic class histogram (1 = perfectly balanced)."""
    h = -sum(p * math.log(p) for p in hist if p > 0)
    return h / math.log(len(hist))


def run_setting(name: str, out: Path, methods: list[str] | None) -> dict:
    ds, tmodel, epochs, all_methods, with_stats = SETTINGS[name]
    root = out / name
    teacher = root / "teacher"
    if (teacher / "teacher.json").exists():
        card = json.loads((teacher / "teacher.json").read_text())
        print(f"[{name}] reusing teacher {teacher} ({pct(card['test_accuracy'])} %)", flush=True)
        teacher_s = None
    else:
        t0 = time.perf_counter()
        card = dfkd.train_teacher(ds, tmodel, epochs, teacher, progress=False)
        teacher_s = round(time.perf_counter() - t0, 1)
    stats = root / "stats.safetensors"
    if not stats.exists():
        dfkd.collect_teacher_stats(teacher, ds, None, stats)
    row: dict = {
        "setting": name,
        "dataset": ds,
        "teacher": tmodel,
        "teacher_epochs": epochs,
        "teacher_accuracy": card["test_accuracy"],
        "teacher_train_s": teacher_s,
        "student": STUDENT,
        "methods": {},
    }
    if methods is None or "kd" in methods:
        m = dfkd.distill(
            teacher, STUDENT, "kd", ds, out=root / "kd", overwrite=True, progress=False
        )
        row["kd"] = {k: m[k] for k in KEEP if k in m}
        print(f"[{name}] kd {pct(m['student_accuracy'])} %", flush=True)
    for method in all_methods:
        if methods is not None and method not in methods:
            continue
        m = dfkd.distill(
            teacher,
            STUDENT,
            method,
            ds,
            out=root / method,
            stats=stats if method in with_stats else None,
            overwrite=True,
            progress=False,
        )
        r = {k: m[k] for k in KEEP if k in m}
        r["stats_file"] = method in with_stats
        r["command"] = command_line()
        r["percent_of_teacher"] = 100 * m["student_accuracy"] / card["test_accuracy"]
        r["class_balance"] = balance(m["synthetic_class_histogram"])
        row["methods"][method] = r
        print(
            f"[{name}] {method} {pct(m['student_accuracy'])} % "
            f"({r['percent_of_teacher']:.1f} % of teacher) in {m['wall_s']:.0f} s",
            flush=True,
        )
    return row


def command_line() -> str:
    """How this process was started, as a reproducible command."""
    return " ".join(["python benchmarks/datafree.py", *sys.argv[1:]])


def merge(old: dict | None, new: dict) -> dict:
    """Replace the new row's parts in the old row (same setting), keep the rest."""
    if not old:
        return new
    merged = {**old, **{k: v for k, v in new.items() if k != "methods"}}
    merged["methods"] = {**old.get("methods", {}), **new["methods"]}
    if "kd" not in new and "kd" in old:
        merged["kd"] = old["kd"]
    return merged


def markdown(meta: dict, rows: dict) -> str:
    lines = [
        *header(
            "Data-free benchmark",
            meta,
            f"Student `{STUDENT}`, seed 0, each method's registered preset for "
            "the dataset (no overrides). Final test-split evaluation, no checkpoint selection; "
            "`last5` = mean of the last five evaluations. `balance` = normalised entropy of the "
            "teacher-predicted class shares of the synthetic data (1 = balanced). KD = classical "
            "KD "
            "on the real training data (the ceiling).",
        ),
    ]
    for name, r in rows.items():
        kd = r.get("kd")
        lines += [
            f"## {name}: {r['teacher']} teacher on {r['dataset']} ({pct(r['teacher_accuracy'])} %)",
            "",
            f"KD with real data: {pct(kd['student_accuracy'])} % in {kd['wall_s']:.0f} s."
            if kd
            else "KD with real data: not run.",
            "",
            "| method | stats file | student acc | last5 | % of teacher | agreement | wall s "
            "| synthesis s | distill s | steps | balance |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for method, m in r["methods"].items():
            lines.append(
                f"| {method} | {'yes' if m['stats_file'] else 'no'} | "
                f"{pct(m['student_accuracy'])} | {pct(m['acc_last5'])} | "
                f"{m['percent_of_teacher']:.1f} | {pct(m['agreement'])} | {m['wall_s']:.0f} | "
                f"{m['synthesis_s']:.0f} | {m['distill_s']:.0f} | {m['steps']} | "
                f"{m['class_balance']:.3f} |"
            )
        lines.append("")
    reruns = sorted(
        {
            (m.get("command"), f"{name}/{method}")
            for name, r in rows.items()
            for method, m in r["methods"].items()
            if m.get("command", meta["command"]) != meta["command"]
        }
    )
    if reruns:
        lines += ["Rows rerun after the full run (same code path, merged by setting/method):", ""]
        lines += [f"- `{cmd}`: {row}" for cmd, row in reruns]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--methods", nargs="+", help="only these methods (and 'kd' for the ceiling)")
    ap.add_argument("--out", default="runs/bench-datafree")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    res, path, doc = results_doc(args.results, "datafree")
    meta = run_meta("python benchmarks/datafree.py")
    for name in args.settings:
        row = run_setting(name, Path(args.out), args.methods)
        doc["rows"][name] = merge(doc["rows"].get(name), row)
        doc["meta"] = meta
        path.write_text(json.dumps(doc, indent=2) + "\n")
        (res / "datafree.md").write_text(markdown(meta, doc["rows"]) + "\n")
    print((res / "datafree.md").read_text())


if __name__ == "__main__":
    main()
