"""The GPU benchmark: a ResNet-34 teacher on Fashion-MNIST brought to 32×32×3, distilled to a
ResNet-18 by each method at its CIFAR-10 configuration (the method defaults), sized to a fixed
wall-clock budget, in fp32 and in bf16 mixed precision.

Per run: the final test accuracy (no checkpoint selection) and its share of the teacher's, the
wall time, the images per second the run processed (synthesis: images through a synthesis step;
student: images through a student step; both over the whole wall time), and the peak GPU
memory. ``--sync-check`` also counts the host synchronisations of a short fixed run of each
method (``torch.cuda.set_sync_debug_mode``), by the source line that caused them, to show
which happen per step and which once per round.

    python benchmarks/gpu.py [--methods dfq deepinversion fast nayer cmi]
                             [--precisions 32-true bf16-mixed] [--time-budget 90s]
                             [--teacher-epochs 8] [--sync-check]

The teacher is trained (in plain bf16 mixed precision, random shifts and flips) once and kept in
``--out``/teacher. Rows are kept beside their runs and not run again unless ``--rerun``; after
each one the results are rebuilt into ``benchmarks/results/gpu.{json,md}``. ``--small`` is the
CPU smoke test's size (tiny models, steps and batches; no budget).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from common import header, pct, results_doc, run_meta

import dfkd
from dfkd.config import load_yaml
from dfkd.io.files import atomic_write_text

DATASET = "fashion-mnist:size=32,channels=3"
METHODS = ["dfq", "deepinversion", "fast", "nayer", "cmi"]
PRECISIONS = ["32-true", "bf16-mixed"]
#: --small: models, teacher training and run shape for a smoke test on a CPU
SMALL_MODELS = ("resnet8", "resnet8")
SMALL_RUN = ["rounds=2", "warmup_rounds=1", "g_steps=2", "kd_steps=2", "batch_size=16",
             "source.args.synth_batch_size=16", "eval_every=1", "checkpoint_every=1"]  # fmt: skip
#: --sync-check: a short fixed run (steps per round known) whose syncs are counted
SYNC_RUN = ["rounds=3", "warmup_rounds=1", "g_steps=20", "kd_steps=20", "eval_every=3",
            "checkpoint_every=3"]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=DATASET)
    p.add_argument("--data-root", default=None, help="the dataset's folder, if not its default")
    p.add_argument("--teacher-model", default="resnet34")
    p.add_argument("--student", default="resnet18")
    p.add_argument("--teacher-epochs", type=int, default=8)
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--precisions", nargs="+", default=PRECISIONS)
    p.add_argument("--time-budget", default="90s")
    p.add_argument("--sync-check", action="store_true")
    p.add_argument("--sync-only", action="store_true", help="the sync check alone, no rows")
    p.add_argument("--small", action="store_true", help="CPU smoke-test sizes")
    p.add_argument("--rerun", action="store_true")
    p.add_argument("--out", default="runs/bench-gpu")
    p.add_argument("--results", default="benchmarks/results")
    p.add_argument("--name", default="gpu", help="results file stem (NAME.json, NAME.md)")
    return p.parse_args(argv)


def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def get_teacher(data: dfkd.Data, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The teacher's folder and card, trained once (its wall time kept in ``train_time.json``)."""
    folder = Path(args.out) / "teacher"
    card_path = folder / "teacher.json"
    if card_path.exists():
        return folder, json.loads(card_path.read_text())
    model = SMALL_MODELS[0] if args.small else args.teacher_model
    t0 = time.perf_counter()
    dfkd.train_teacher(
        data, model, epochs=1 if args.small else args.teacher_epochs, out=folder,
        batch_size=16 if args.small else 256, lr=0.1, shift=2, flip=True, progress=False,
        precision="32-true" if args.small else "bf16-mixed",
    )  # fmt: skip
    train_s = round(time.perf_counter() - t0, 1)
    atomic_write_text(folder / "train_time.json", json.dumps({"train_s": train_s}))
    return folder, json.loads(card_path.read_text())


def overrides(precision: str, args: argparse.Namespace) -> list[str]:
    return [f"fabric.precision={precision}", *(SMALL_RUN if args.small else [])]


def run_row(data: dfkd.Data, teacher: Path, method: str, precision: str,
            args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """One distillation; its row."""
    student = SMALL_MODELS[1] if args.small else args.student
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    m = dfkd.distill(
        teacher, student, method, data, out=Path(args.out) / f"{method}-{precision}",
        overrides=overrides(precision, args), overwrite=True, progress=False,
        time_budget=None if args.small else args.time_budget,
    )  # fmt: skip
    cfg = load_yaml(Path(m["out"]) / "config.yaml")
    synth_batch = cfg["source"]["args"].get("synth_batch_size") or cfg["batch_size"]
    wall = m["wall_s"]
    return {
        "method": method, "precision": precision,
        "student_accuracy": m["student_accuracy"], "acc_last5": m["acc_last5"],
        "teacher_accuracy": m["teacher_accuracy"],
        "share": m["student_accuracy"] / m["teacher_accuracy"],
        "wall_s": round(wall, 1), "rounds": m["rounds"], "steps": m["steps"],
        "synth_img_per_s": round(m["rounds"] * cfg["g_steps"] * synth_batch / wall, 1),
        "student_img_per_s": round(m["steps"] * cfg["batch_size"] / wall, 1),
        "synthesis_share": round(m["synthesis_s"] / wall, 3),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "uncovered_classes": m["uncovered_classes"],
        "budget": m.get("budget"),
    }  # fmt: skip


def sync_sites(data: dfkd.Data, teacher: Path, method: str, args: argparse.Namespace) -> dict:
    """Host synchronisations of a short fixed run (:data:`SYNC_RUN`), counted by the innermost
    line of dfkd (and, where the sync happened inside torch, that line) that caused them."""
    package = Path(dfkd.__file__).parent
    sites: Counter[str] = Counter()

    def where(frames: traceback.StackSummary) -> str:
        ours = [f for f in frames if package in Path(f.filename).parents]
        site = f"{Path(ours[-1].filename).relative_to(package)}:{ours[-1].lineno}" if ours else "?"
        last = frames[-1]
        inner = "" if ours and last is ours[-1] else f" ({Path(last.filename).name}:{last.lineno})"
        return site + inner

    def record(message: Any, *_: Any, **__: Any) -> None:
        if "synchroniz" in str(message):
            frames = [f for f in traceback.extract_stack()[:-1] if "warnings" not in f.filename]
            sites[where(traceback.StackSummary.from_list(frames))] += 1

    warm = dfkd.resolve_config(method, data.name).warmup_rounds > 0  # dfad has no warm-up
    over = ["fabric.precision=32-true", *(o for o in SYNC_RUN if warm or "warmup" not in o)]
    shown, warnings.showwarning = warnings.showwarning, record
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            dfkd.distill(teacher, args.student, method, data, overrides=over, progress=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
        warnings.showwarning = shown
    return {"run": over[1:], "total": sum(sites.values()), "sites": dict(sites.most_common())}


def write_results(doc: dict[str, Any], res: Path, path: Path) -> None:
    atomic_write_text(path, json.dumps(doc, indent=1))
    atomic_write_text(path.with_suffix(".md"), "\n".join(markdown(doc)) + "\n")


def markdown(doc: dict[str, Any]) -> list[str]:
    meta, t = doc["meta"], doc.get("teacher", {})
    lines = header("GPU benchmark: ResNet-34 → ResNet-18 on Fashion-MNIST at 32×32×3", meta,
        f"Device: {meta['device']}. Teacher {t.get('model')} {pct(t.get('test_accuracy'))} % "
        f"after {t.get('epochs')} epochs ({t.get('train_s')} s). Each method at its CIFAR-10 "
        f"configuration sized to a {meta['time_budget']} budget; final figures, "
        "no checkpoint selection; images/s over the whole wall time.")  # fmt: skip
    lines += ["| method | precision | student % | % of teacher | last-5 % | wall s | rounds |"
              " synth img/s | student img/s | synthesis share | peak GiB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for key in sorted(
        doc["rows"],
        key=lambda k: (METHODS.index(k.split("@")[0]) if k.split("@")[0] in METHODS else 99, k),
    ):
        r = doc["rows"][key]
        lines.append(
            f"| {r['method']} | {r['precision']} | {pct(r['student_accuracy'])} | "
            f"{pct(r['share'], 1)} | {pct(r['acc_last5'])} | {r['wall_s']} | {r['rounds']} | "
            f"{r['synth_img_per_s']:.0f} | {r['student_img_per_s']:.0f} | "
            f"{r['synthesis_share']:.2f} | {r['peak_mem_gib']} |"
        )
    for method, s in doc.get("syncs", {}).items():
        top = ", ".join(f"`{k}` ×{v}" for k, v in list(s["sites"].items())[:6]) or "none"
        run = ", ".join(s.get("run", SYNC_RUN)[:4])
        lines.append(f"\nHost syncs, `{method}` ({run}): {s['total']}: {top}")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    data = dfkd.load_dataset(args.dataset, args.data_root)
    res, path, doc = results_doc(args.results, args.name)
    if args.rerun:
        doc = {"rows": {}}
    command = "python benchmarks/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    doc["meta"] = run_meta(command, device=device_name(),
                           time_budget=None if args.small else args.time_budget)  # fmt: skip
    teacher, card = get_teacher(data, args)
    train = Path(teacher) / "train_time.json"
    doc["teacher"] = {"model": card["architecture"]["name"],
                      "epochs": 1 if args.small else args.teacher_epochs,
                      "test_accuracy": card["test_accuracy"],
                      "train_s": json.loads(train.read_text())["train_s"]}  # fmt: skip
    for method in args.methods:
        for precision in args.precisions:
            key = f"{method}@{precision}"
            if args.sync_only or (key in doc["rows"] and not args.rerun):
                continue
            doc["rows"][key] = row = run_row(data, teacher, method, precision, args)
            print(json.dumps(row), flush=True)
            write_results(doc, res, path)
        if (args.sync_check or args.sync_only) and torch.cuda.is_available():
            doc.setdefault("syncs", {})[method] = sync_sites(data, teacher, method, args)
            print(method, "syncs", json.dumps(doc["syncs"][method]), flush=True)
            write_results(doc, res, path)
    write_results(doc, res, path)
    print("\n".join(markdown(doc)))


if __name__ == "__main__":
    main()
