"""Foundation benchmark: supervised teachers and classical KD (the ceiling for data-free methods).

Trains a ``lenet5`` (BatchNorm) teacher on MNIST-10k and on Fashion-MNIST, distils each into
``lenet5_half`` with classical KD, and writes ``benchmarks/results/foundation.{md,json}``.
Every figure is the final evaluation on the test split (no checkpoint selection).

    python benchmarks/foundation.py [--out runs/bench-foundation]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import dfkd

SETTINGS = [
    # dataset, teacher model, teacher epochs, teacher shift augmentation, student, KD overrides
    ("mnist10k", "lenet5", 20, 0, "lenet5_half", []),
    # the same plain recipe on Fashion-MNIST ...
    ("fashion-mnist", "lenet5", 20, 0, "lenet5_half", []),
    # ... and a stronger, augmented teacher: shows where the small student's capacity ends
    ("fashion-mnist", "lenet5", 30, 2, "lenet5_half", []),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-foundation")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    out = Path(args.out)
    rows = []
    for ds, tmodel, epochs, shift, smodel, kd_over in SETTINGS:
        t0 = time.perf_counter()
        card = dfkd.train_teacher(
            ds,
            tmodel,
            epochs,
            out / f"{ds}-e{epochs}-s{shift}" / "teacher",
            shift=shift,
            overwrite=True,
            progress=False,
        )
        t_s = time.perf_counter() - t0
        m = dfkd.distill(
            out / f"{ds}-e{epochs}-s{shift}" / "teacher",
            smodel,
            "kd",
            ds,
            out=out / f"{ds}-e{epochs}-s{shift}" / "kd",
            overrides=kd_over,
            overwrite=True,
            progress=False,
        )
        row = {
            "dataset": ds,
            "teacher": tmodel,
            "teacher_epochs": epochs,
            "teacher_shift": shift,
            "teacher_accuracy": card["test_accuracy"],
            "teacher_train_s": round(t_s, 1),
            "student": smodel,
            "kd_overrides": " ".join(kd_over) or "-",
            "kd_student_accuracy": m["student_accuracy"],
            "kd_acc_last5": m["acc_last5"],
            "kd_agreement": m["agreement"],
            "kd_gap_points": 100 * (card["test_accuracy"] - m["student_accuracy"]),
            "kd_steps": m["steps"],
            "kd_wall_s": m["wall_s"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python benchmarks/foundation.py",
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "dfkd": dfkd.__version__,
    }
    (res / "foundation.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# Foundation benchmark: teachers and classical KD",
        "",
        f"Command: `{meta['command']}` (torch {meta['torch']}, {meta['machine']}). "
        "Final test-split evaluation, no checkpoint selection.",
        "",
        "| dataset | teacher | teacher acc | teacher train s | student | KD overrides | KD acc "
        "| KD last-5 mean | agreement | gap (points) | KD steps | KD s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['teacher']} "
            f"({r['teacher_epochs']} ep, shift {r['teacher_shift']}) "
            f"| {100 * r['teacher_accuracy']:.2f} | {r['teacher_train_s']:.0f} | {r['student']} "
            f"| `{r['kd_overrides']}` "
            f"| {100 * r['kd_student_accuracy']:.2f} | {100 * r['kd_acc_last5']:.2f} "
            f"| {100 * r['kd_agreement']:.2f} | {r['kd_gap_points']:+.2f} | {r['kd_steps']} "
            f"| {r['kd_wall_s']:.0f} |"
        )
    (res / "foundation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
