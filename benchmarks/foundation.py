"""Foundation benchmark: supervised teachers and classical KD (the ceiling for data-free methods).

Trains ``lenet5`` (BatchNorm) teachers on MNIST-10k and Fashion-MNIST, distils each into
``lenet5_half`` with classical KD under several seeds, and writes
``benchmarks/results/foundation.{md,json}``. Every figure is the final evaluation on the test split
(no checkpoint selection); KD figures are reported per seed and as mean ± std.

    python benchmarks/foundation.py [--out runs/bench-foundation] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import pct, run_meta

import dfkd

SETTINGS = [
    # dataset, teacher model, teacher epochs, teacher shift augmentation, student
    ("mnist10k", "lenet5", 20, 0, "lenet5_half"),
    # the same plain recipe on Fashion-MNIST ...
    ("fashion-mnist", "lenet5", 20, 0, "lenet5_half"),
    # ... and a stronger, augmented teacher: shows where the small student's capacity ends
    ("fashion-mnist", "lenet5", 30, 2, "lenet5_half"),
]


def setting_row(setting: tuple, out: Path, seeds: list[int]) -> dict:
    """Train one setting's teacher, distil it with ``kd`` for every seed; the setting's row."""
    ds, tmodel, epochs, shift, smodel = setting
    run_dir = out / f"{ds}-e{epochs}-s{shift}"
    t0 = time.perf_counter()
    card = dfkd.train_teacher(
        ds, tmodel, epochs, run_dir / "teacher", shift=shift, overwrite=True, progress=False
    )
    t_s = time.perf_counter() - t0
    kd = []
    for seed in seeds:
        m = dfkd.distill(
            run_dir / "teacher", smodel, "kd", ds, out=run_dir / f"kd-seed{seed}",
            seed=seed, overwrite=True, progress=False,
        )  # fmt: skip
        kd.append({k: m[k] for k in ("student_accuracy", "acc_last5", "agreement", "steps",
                                     "wall_s")})  # fmt: skip
        kd[-1]["seed"] = seed
        print(json.dumps({"dataset": ds, "teacher_epochs": epochs, **kd[-1]}), flush=True)
    accs = [r["student_accuracy"] for r in kd]
    return {
        "dataset": ds,
        "teacher": tmodel,
        "teacher_epochs": epochs,
        "teacher_shift": shift,
        "teacher_accuracy": card["test_accuracy"],
        "teacher_train_s": round(t_s, 1),
        "student": smodel,
        "kd_runs": kd,
        "kd_mean": statistics.mean(accs),
        "kd_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "kd_min": min(accs),
        "kd_gap_points_mean": 100 * (card["test_accuracy"] - statistics.mean(accs)),
        "kd_gap_points_worst": 100 * (card["test_accuracy"] - min(accs)),
        "kd_agreement_mean": statistics.mean(r["agreement"] for r in kd),
        "kd_steps": kd[0]["steps"],
        "kd_wall_s_mean": statistics.mean(r["wall_s"] for r in kd),
    }


def markdown(rows: list[dict], cmd: str, meta: dict, seeds: list[int]) -> str:
    """The results page."""
    lines = [
        "# Foundation benchmark: teachers and classical KD",
        "",
        f"Command: `{cmd}` (torch {meta['torch']}, {meta['threads']} threads, {meta['machine']}).",
        "Final test-split evaluation, no checkpoint selection. Teachers: seed 0. "
        f"KD into the student: {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
        "default `kd` method and dataset preset.",
        "",
        "| dataset | teacher | teacher acc | teacher train s | student | KD acc mean ± std "
        "| KD acc min | gap mean / worst (points) | agreement mean | KD steps | KD s (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['teacher']} ({r['teacher_epochs']} ep, shift "
            f"{r['teacher_shift']}) | {pct(r['teacher_accuracy'])} | {r['teacher_train_s']:.0f} "
            f"| {r['student']} | {pct(r['kd_mean'])} ± {pct(r['kd_std'])} | {pct(r['kd_min'])} "
            f"| {r['kd_gap_points_mean']:.2f} / {r['kd_gap_points_worst']:.2f} "
            f"| {pct(r['kd_agreement_mean'])} | {r['kd_steps']} | {r['kd_wall_s_mean']:.0f} |"
        )
    lines += ["", "Per seed (final KD student accuracy, %):", ""]
    for r in rows:
        per = ", ".join(f"seed {k['seed']}: {pct(k['student_accuracy'])}" for k in r["kd_runs"])
        lines.append(f"- {r['dataset']}, teacher {r['teacher_epochs']} ep shift "
                     f"{r['teacher_shift']}: {per}")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-foundation")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    rows = []
    for setting in SETTINGS:
        rows.append(setting_row(setting, Path(args.out), args.seeds))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "kd_runs"}), flush=True)
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/foundation.py" + (
        "" if args.seeds == [0, 1, 2] else " --seeds " + " ".join(map(str, args.seeds))
    )
    meta = run_meta(cmd, seeds=args.seeds)
    (res / "foundation.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    page = markdown(rows, cmd, meta, args.seeds)
    (res / "foundation.md").write_text(page)
    print(page, end="")


if __name__ == "__main__":
    main()
