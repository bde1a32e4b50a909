"""Non-transferable teachers: the OOD trap and the two escapes, side by side (seed 000, ATEsc).

Trains, on MNIST-10k with ``lenet5``, an ordinary teacher and four non-transferable ones —
``ntl`` close-set (OOD: sklearn digits, same labels), ``ntl`` open-set (OOD: Fashion-MNIST),
``watermark`` (grid pattern) and ``backdoor`` (4×4 square, attack label 0) — then distils each
into ``lenet5_half`` with ``dfq`` and ``dfad``, plain, with ``ood_escape`` and with ``atesc``, all
at the same budget. Every final student is evaluated on every OOD domain and trigger.

    python benchmarks/nt_teachers.py [--steps 1500] [--methods dfq dfad]

Writes ``benchmarks/results/nt_teachers.{json,md}``. Teachers and finished runs under ``--out``
are reused, so a cut-off run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import common
from common import budget_overrides, budget_rounds, finished_run, header, results_doc, run_meta

import dfkd

DATASET = "mnist10k"
STUDENT = "lenet5_half"
#: name → (kind or None for ordinary, keyword arguments of train_nt_teacher, its own domain)
TEACHERS = {
    "ordinary": (None, {}, {"ood_dataset": "digits", "trigger": "square:target=0"}),
    "ntl-close": ("ntl", {"ood": "digits"}, {"ood_dataset": "digits"}),
    "ntl-open": ("ntl", {"ood": "fashion-mnist"}, {"ood_dataset": "fashion-mnist"}),
    "watermark": ("watermark", {"trigger": "grid"}, {"trigger": "grid"}),
    "backdoor": ("backdoor", {"trigger": "square:target=0"}, {"trigger": "square:target=0"}),
}
#: every student is also evaluated on all of these
DOMAINS = [
    {"ood_dataset": "digits"},
    {"ood_dataset": "fashion-mnist"},
    {"trigger": "grid"},
    {"trigger": "square:target=0"},
]
#: ordinary teachers that are only audited (the audit's false-positive check)
AUDIT_ONLY = {
    "ordinary-s1": ("lenet5", 1, {}),
    "ordinary-mlp": ("mlp", 0, {"bn": True}),
    # held out: added after the audit's thresholds were set from the teachers above
    "ordinary-s2": ("lenet5", 2, {}),
    "ordinary-mlp-s1": ("mlp", 1, {"bn": True}),
}
VARIANTS = {"plain": [], "+ood_escape": ["ood_escape"], "+atesc": ["atesc"]}
TEACHER_EPOCHS = 20  # ordinary: SGD recipe of the other benchmarks
NT_EPOCHS = 20


def make_teacher(name: str, out: Path) -> dict:
    path = out / "teachers" / name
    if (path / "teacher.json").exists():
        return json.loads((path / "teacher.json").read_text())
    kind, kw, _ = TEACHERS[name]
    if kind is None:
        card = dfkd.train_teacher(DATASET, "lenet5", TEACHER_EPOCHS, path, progress=False)
    else:
        card = dfkd.train_nt_teacher(kind, DATASET, epochs=NT_EPOCHS, out=path, progress=False,
                                     **kw)  # fmt: skip
    card.pop("model", None)
    return card


def domain_metrics(student: Path, teacher: Path) -> dict:
    """Every OOD metric of the final student (and its teacher), on every domain."""
    out = {}
    for d in DOMAINS:
        r = dfkd.evaluate(student, DATASET, teacher=teacher, **d)
        tag = d.get("ood_dataset") or d["trigger"]
        out[tag] = {k: v for k, v in r.items() if k.startswith(("ood_", "triggered_", "attack_",
                                                                 "teacher_ood", "teacher_trig",
                                                                 "teacher_attack"))}  # fmt: skip
    return out


def teacher_entry(name: str, out: Path) -> dict:
    """Make (or reuse) one NT teacher; its accuracy, audit and behaviour on every domain."""
    card = make_teacher(name, out)
    tdir = out / "teachers" / name
    return {
        "id_accuracy": card["test_accuracy"],
        "non_transferable": card.get("non_transferable"),
        "train_s": card["train"]["wall_s"],
        "audit": dfkd.audit_teacher(tdir),
        "domains": {
            (d.get("ood_dataset") or d["trigger"]): dfkd.evaluate(tdir, DATASET, **d)
            for d in DOMAINS
        },
        # how differently from the ordinary teacher it answers on Fashion-MNIST (open-set)
        "fashion_agreement_with_ordinary": dfkd.evaluate(
            tdir, DATASET, teacher=out / "teachers" / "ordinary", ood_dataset="fashion-mnist"
        )["ood_teacher_agreement"],
    }


def audit_only_entry(name: str, out: Path) -> dict:
    """Train (or reuse) one ordinary teacher that is only audited; its accuracy and audit."""
    model, seed, margs = AUDIT_ONLY[name]
    tdir = out / "teachers" / name
    if not (tdir / "teacher.json").exists():
        dfkd.train_teacher(DATASET, model, TEACHER_EPOCHS, tdir, seed=seed, model_args=margs,
                           progress=False)  # fmt: skip
    card = json.loads((tdir / "teacher.json").read_text())
    return {"id_accuracy": card["test_accuracy"], "audit": dfkd.audit_teacher(tdir)}


def student_row(method: str, variant: str, name: str, out: Path, steps: int) -> dict:
    """Distil (or reuse) one student of one NT teacher; its row."""
    tdir = out / "teachers" / name
    run_dir = out / "runs" / method / variant.lstrip("+") / name
    if finished_run(run_dir, budget_rounds(method, DATASET, steps)) is None:
        dfkd.distill(tdir, STUDENT, method, DATASET, out=run_dir,
                     overrides=budget_overrides(method, DATASET, steps),
                     plugins=VARIANTS[variant], overwrite=True, progress=False,
                     **TEACHERS[name][2])  # fmt: skip
    m = json.loads((run_dir / "metrics.json").read_text())
    hist = (run_dir / "history.csv").read_text().splitlines()
    head = hist[0].split(",")
    last = dict(zip(head, hist[-1].split(","), strict=False))
    robust = next((float(last[k]) for k in head if k.endswith("robust_fraction")), None)
    flagged = next((float(last[k]) for k in head if k == "ood_escape/ood_fraction"), None)
    return {
        "method": method,
        "variant": variant,
        "teacher": name,
        "student_accuracy": m["student_accuracy"],
        "acc_last5": m["acc_last5"],
        "teacher_accuracy": m["teacher_accuracy"],
        "wall_s": m["wall_s"],
        "robust_fraction_last_round": robust,
        "ood_flagged_fraction_last_round": flagged,
        "domains": domain_metrics(run_dir, tdir),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500, help="student steps per run")
    ap.add_argument("--methods", nargs="*", default=["dfq", "dfad"], help="none: teachers only")
    ap.add_argument("--teachers", nargs="+", choices=list(TEACHERS), default=list(TEACHERS))
    ap.add_argument("--out", default="runs/bench-nt")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    out = Path(args.out)
    res, path, doc = results_doc(args.results, "nt_teachers")
    doc["meta"] = run_meta("python benchmarks/nt_teachers.py"
                           + ("" if args.steps == 1500 else f" --steps {args.steps}"),
                           steps=args.steps)  # fmt: skip
    doc.setdefault("teachers", {})
    names = ["ordinary", *[n for n in args.teachers if n != "ordinary"]]  # the reference first
    for name in names:
        t = doc["teachers"][name] = teacher_entry(name, out)
        print(f"teacher {name}: {100 * t['id_accuracy']:.2f} %  "
              f"audit: {t['audit']['non_transferable_suspected']}", flush=True)  # fmt: skip
        path.write_text(json.dumps(doc, indent=2) + "\n")
    doc.setdefault("audit_only", {})
    for name in AUDIT_ONLY:
        t = doc["audit_only"][name] = audit_only_entry(name, out)
        print(f"teacher {name}: {100 * t['id_accuracy']:.2f} %  "
              f"audit: {t['audit']['non_transferable_suspected']}", flush=True)  # fmt: skip
    path.write_text(json.dumps(doc, indent=2) + "\n")
    for method in args.methods:
        for name in args.teachers:
            for variant in VARIANTS:
                t0 = time.perf_counter()
                r = doc["rows"][f"{method}/{variant}/{name}"] = student_row(
                    method, variant, name, out, args.steps
                )
                print(f"{method}{variant if variant != 'plain' else ''} on {name}: "
                      f"{100 * r['student_accuracy']:.2f} % in {r['wall_s']:.0f} s "
                      f"(bench {time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
                path.write_text(json.dumps(doc, indent=2) + "\n")
    (res / "nt_teachers.md").write_text(markdown(doc) + "\n")
    print((res / "nt_teachers.md").read_text())


def pct(v: float | None) -> str:
    return common.pct(v, 1)


def markdown(doc: dict) -> str:
    meta = doc["meta"]
    lines = [
        *header(
            "Non-transferable teachers: the OOD trap and the escapes",
            meta,
            f"MNIST-10k, teachers `lenet5`, students `lenet5_half`, "
            f"{meta['steps']} student steps per run (each method's MNIST-10k preset, rounds "
            "scaled). "
            "Final evaluation only. OOD domains: sklearn digits in MNIST framing (close-set), "
            "Fashion-MNIST (open-set); triggers: `grid` watermark, `square:target=0` backdoor.",
        ),
        "## Teachers",
        "",
        "| teacher | ID acc | digits acc | fashion: agree w/ ordinary | grid-marked acc "
        "| backdoor ASR | audit: suspected | inverted robust | noise robust | inverted sink "
        "| train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in doc["teachers"].items():
        d = t["domains"]
        a = t["audit"]
        lines.append(
            f"| {name} | {pct(t['id_accuracy'])} | {pct(d['digits'].get('ood_accuracy'))} "
            f"| {pct(t['fashion_agreement_with_ordinary'])} "
            f"| {pct(d['grid'].get('triggered_accuracy'))} "
            f"| {pct(d['square:target=0'].get('attack_success_rate'))} "
            f"| {'**yes**' if a['non_transferable_suspected'] else 'no'} "
            f"| {pct(a['signals']['inverted']['robust_fraction'])} "
            f"| {pct(a['signals']['noise']['robust_fraction'])} "
            f"| {pct(a['signals']['inverted']['attack_sink'])} | {t['train_s']:.0f} |"
        )
    for name, t in doc.get("audit_only", {}).items():
        a = t["audit"]
        lines.append(
            f"| {name} (audit only) | {pct(t['id_accuracy'])} | | | | "
            f"| {'**yes**' if a['non_transferable_suspected'] else 'no'} "
            f"| {pct(a['signals']['inverted']['robust_fraction'])} "
            f"| {pct(a['signals']['noise']['robust_fraction'])} "
            f"| {pct(a['signals']['inverted']['attack_sink'])} | |"
        )
    lines += [
        "",
        "## Students",
        "",
        "Per row, the metrics of the teacher's own trap: close-set — OOD accuracy on digits (true "
        "labels) and agreement with the teacher there; open-set — agreement with the teacher on "
        "Fashion-MNIST; watermark — accuracy on marked images; backdoor — attack success rate. "
        "The ordinary teacher's students are shown on all of them.",
        "",
        "| method | teacher | ID acc | digits acc | digits agree | fashion agree | grid acc "
        "| ASR | robust frac | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"].values():
        d = r["domains"]
        lines.append(
            f"| {r['method']}{'' if r['variant'] == 'plain' else ' ' + r['variant']} "
            f"| {r['teacher']} | {pct(r['student_accuracy'])} "
            f"| {pct(d['digits'].get('ood_accuracy'))} "
            f"| {pct(d['digits'].get('ood_teacher_agreement'))} "
            f"| {pct(d['fashion-mnist'].get('ood_teacher_agreement'))} "
            f"| {pct(d['grid'].get('triggered_accuracy'))} "
            f"| {pct(d['square:target=0'].get('attack_success_rate'))} "
            f"| {pct(r['robust_fraction_last_round'])} | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
