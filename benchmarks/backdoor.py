"""Backdoor teachers and the escapes: ABD, the inverted-trigger filter and ATEsc, side by side.

Trains ``lenet5`` backdoor teachers (``dfkd.train_nt_teacher("backdoor")``, attack label 0) —
MNIST-10k with the ``square``, ``blend`` and ``trojan`` triggers, Fashion-MNIST with ``square`` —
and distils each into ``lenet5_half`` with ``dfq``, ``dfad`` and ``nayer`` at the same budget
(each method's preset, rounds scaled to ``--steps`` student steps): plain, with ``abd_sv``,
``abd_sr``, both, ``trigger_filter`` (relabel, filter, both at portion 1, and filter with the
trigger inverted again from the distillation samples and erased 2 px wider) and ``atesc``
(``kl_gmm`` split). Figures: the final student's ID accuracy and attack success rate, wall
time. The audit table: the trigger scan of ``dfkd audit`` on every backdoor teacher and on five
clean MNIST-10k teachers (``lenet5`` seeds 0–2, BatchNorm MLP seeds 0–1).

    python benchmarks/backdoor.py [--steps 1500] [--methods dfq dfad nayer]
                                  [--teachers ...] [--variants ...]

Writes ``benchmarks/results/backdoor.{json,md}``. Teachers and finished runs under ``--out`` are
reused, so a cut-off run continues where it stopped; several processes may share the work
(different ``--teachers`` or ``--methods``): each row is written as it finishes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import (
    TEACHER_EPOCHS,
    budget_overrides,
    budget_rounds,
    finished_run,
    header,
    pct,
    run_meta,
)

import dfkd
from dfkd.evaluation.domains import Trigger
from dfkd.io.files import atomic_write_text

STUDENT = "lenet5_half"
#: name → (dataset, trigger)
TEACHERS = {
    "mnist10k-square": ("mnist10k", "square:target=0"),
    "mnist10k-blend": ("mnist10k", "blend:target=0"),
    "mnist10k-trojan": ("mnist10k", "trojan:target=0"),
    "fashion-mnist-square": ("fashion-mnist", "square:target=0"),
}
#: clean MNIST-10k teachers, audited only: name → (architecture, seed, model options)
CLEAN = {
    "clean-lenet5-s0": ("lenet5", 0, {}),
    "clean-lenet5-s1": ("lenet5", 1, {}),
    "clean-lenet5-s2": ("lenet5", 2, {}),
    "clean-mlp-s0": ("mlp", 0, {"bn": True}),
    "clean-mlp-s1": ("mlp", 1, {"bn": True}),
}
VARIANTS = {
    "plain": [],
    "+abd_sv": ["abd_sv"],
    "+abd_sr": ["abd_sr"],
    "+abd": ["abd_sv", "abd_sr"],
    "+tf_relabel": ["trigger_filter:mode=relabel"],
    "+tf_filter": ["trigger_filter:mode=filter"],
    "+tf_both": ["trigger_filter:mode=both,portion=1.0"],
    "+tf_rescan": ["trigger_filter:mode=filter,rescan=true,dilate=2"],
    "+atesc": ["atesc:split=kl_gmm"],
}
NT_EPOCHS = 20


def trigger_region(trigger: Trigger, shape: tuple[int, ...]) -> torch.Tensor:
    """Where ``trigger`` changes the pixels of ``C×H×W`` images: 1 inside, 0 outside (``H×W``)."""
    zeros = torch.zeros((1, *shape))
    changed = (trigger.pixels(zeros) != zeros) | (trigger.pixels(zeros - 1) != zeros - 1)
    return changed.any(1)[0].float()


def make_teacher(name: str, out: Path) -> Path:
    """The backdoor or clean teacher ``name`` under ``out/teachers`` (trained once)."""
    path = out / "teachers" / name
    if (path / "teacher.json").exists():
        return path
    if name in CLEAN:
        model, seed, margs = CLEAN[name]
        dfkd.train_teacher("mnist10k", model, TEACHER_EPOCHS["mnist10k"], path, seed=seed,
                           model_args=margs, progress=False)  # fmt: skip
    else:
        dataset, trigger = TEACHERS[name]
        dfkd.train_nt_teacher("backdoor", dataset, epochs=NT_EPOCHS, out=path, trigger=trigger,
                              progress=False)  # fmt: skip
    return path


def teacher_row(name: str, tdir: Path, png: Path) -> dict:
    """ID accuracy, ASR (backdoor teachers) and the audit with its trigger scan."""
    card = json.loads((tdir / "teacher.json").read_text())
    audit = dfkd.audit_teacher(tdir, trigger_png=None if png.exists() else png)
    row = {"id_accuracy": card["test_accuracy"], "audit": audit, "target": None, "asr": None}
    if name in TEACHERS:
        dataset, trigger = TEACHERS[name]
        r = dfkd.evaluate(tdir, dataset, trigger=trigger)
        row.update(target=0, asr=r.get("attack_success_rate"))
    return row


def student_row(method: str, variant: str, name: str, out: Path, steps: int) -> dict:
    """Distil (or reuse) one cell and evaluate its final student."""
    dataset, trigger = TEACHERS[name]
    tdir = out / "teachers" / name
    run_dir = out / "runs" / method / variant.lstrip("+") / name
    over, rounds = budget_overrides(method, dataset, steps), budget_rounds(method, dataset, steps)
    if finished_run(run_dir, rounds) is None:
        dfkd.distill(tdir, STUDENT, method, dataset, out=run_dir, overrides=over,
                     plugins=VARIANTS[variant], overwrite=True, progress=False)  # fmt: skip
    m = json.loads((run_dir / "metrics.json").read_text())
    r = dfkd.evaluate(run_dir, dataset, teacher=tdir, trigger=trigger)
    return {
        "method": method, "variant": variant, "teacher": name,
        "student_accuracy": m["student_accuracy"], "acc_last5": m["acc_last5"],
        "teacher_accuracy": m["teacher_accuracy"], "wall_s": m["wall_s"],
        "asr": r.get("attack_success_rate"), "triggered_accuracy": r.get("triggered_accuracy"),
    }  # fmt: skip


def save(res: Path, meta: dict, group: str, key: str, row: dict) -> None:
    """Write one row (``group`` ``teachers`` or ``rows``) into the results on disk: only that
    row changes, so processes sharing the work never write back each other's older rows."""
    path = res / "backdoor.json"
    doc = json.loads(path.read_text()) if path.exists() else {"teachers": {}, "rows": {}}
    doc["meta"] = meta
    doc.setdefault(group, {})[key] = row
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    atomic_write_text(res / "backdoor.md", markdown(doc) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500, help="student steps per run")
    ap.add_argument("--methods", nargs="*", default=["dfq", "dfad", "nayer"])
    ap.add_argument("--teachers", nargs="+", choices=list(TEACHERS), default=list(TEACHERS))
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--no-audit", action="store_true", help="skip the teachers' audit table")
    ap.add_argument("--out", default="runs/bench-backdoor")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    out, res = Path(args.out), Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/backdoor.py" + ("" if args.steps == 1500 else f" --steps {args.steps}")
    meta = run_meta(cmd, steps=args.steps)
    for name in [*args.teachers, *([] if args.no_audit else CLEAN)]:
        tdir = make_teacher(name, out)
        if not args.no_audit:
            trow = teacher_row(name, tdir, out / "triggers" / f"{name}.png")
            save(res, meta, "teachers", name, trow)
            scan = trow["audit"]["trigger_scan"]
            print(f"teacher {name}: suspected target {scan['suspected_target']}", flush=True)
    for method in args.methods:
        for name in args.teachers:
            for variant in args.variants:
                t0 = time.perf_counter()
                row = student_row(method, variant, name, out, args.steps)
                save(res, meta, "rows", f"{method}/{variant}/{name}", row)
                took = time.perf_counter() - t0
                print(f"{method} {variant} on {name}: ID {pct(row['student_accuracy'])} "
                      f"ASR {pct(row['asr'])} ({took:.0f} s)", flush=True)  # fmt: skip


def markdown(doc: dict) -> str:
    meta = doc["meta"]
    lines = header(
        "Backdoor teachers: ABD, the inverted-trigger filter and ATEsc",
        meta,
        f"Teachers `lenet5` trained with a backdoor (attack label 0), students `lenet5_half`, "
        f"{meta['steps']} student steps per run (each method's preset, rounds scaled). Final "
        "evaluation only: ID test accuracy and attack success rate (ASR: triggered test images "
        "of other classes that the student sends to the attack label).",
    )
    lines += [
        "## Teachers and the audit's trigger scan",
        "",
        "| teacher | ID acc | ASR | scan: suspected target | smallest-mask class "
        "| its mask L1 (px) | its anomaly index | ratio to the 2nd smallest | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in doc["teachers"].items():
        scan = t["audit"]["trigger_scan"]
        k = scan["smallest_mask_class"]
        lines.append(
            f"| {name} | {pct(t['id_accuracy'])} | {pct(t['asr'])} "
            f"| {scan['suspected_target'] if scan['suspected_target'] is not None else 'none'} "
            f"| {k} | {scan['mask_l1'][k]} | {scan['anomaly_index'][k]:.2f} "
            f"| {scan.get('second_ratio', float('nan')):.2f} "
            f"| {'suspected' if t['audit']['non_transferable_suspected'] else 'ordinary'} |"
        )
    lines += ["", "## Students: ID accuracy / ASR (%), and seconds", ""]
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in doc["rows"].values())]
    for name in TEACHERS:
        rows = [r for r in doc["rows"].values() if r["teacher"] == name]
        if not rows:
            continue
        lines += [f"### {name}", "", "| method | " + " | ".join(variants) + " |",
                  "|---" * (len(variants) + 1) + "|"]  # fmt: skip
        for method in dict.fromkeys(r["method"] for r in rows):
            cells = []
            for v in variants:
                r = doc["rows"].get(f"{method}/{v}/{name}")
                cells.append("–" if r is None else f"{pct(r['student_accuracy'], 1)} / "
                             f"{pct(r['asr'], 1)} ({r['wall_s']:.0f} s)")  # fmt: skip
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
