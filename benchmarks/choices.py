"""The measured choices behind the fast-synthesis presets: Reptile against first-order MAML for
``fast``, the class embedding of ``nayer``, and CMI's generator steps per batch.

Each variant distils the zoo's ``lenet5`` teacher on MNIST-10k into ``lenet5_half`` (seed 0)
with the method's preset and the overrides shown; final test-split accuracy, the mean of the
last five evaluations, and the loop's wall time. A variant whose run folder (``--out``/NAME)
already holds a finished run is read, not run again (``--rerun`` to redo it).

    python benchmarks/choices.py [--rerun]

Output: ``benchmarks/results/choices.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import header, pct, results_doc, run_meta
from zoo import zoo_teacher

import dfkd
from dfkd.io.files import atomic_write_text

#: name → (method, overrides); the first variant of each method is its preset
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "fast-p": ("fast", []),
    "fast-fomaml": ("fast", ["source.args.meta=fomaml"]),
    "nayer-p": ("nayer", []),
    "nayer-onehot": ("nayer", ["source.args.embedding=onehot"]),
    "nayer-learn": ("nayer", ["source.args.embedding=learnable"]),
    "cmi-p": ("cmi", []),
    "cmi-g10": ("cmi", ["g_steps=10", "rounds=80", "eval_every=4", "checkpoint_every=4"]),
}


def run(name: str, args: argparse.Namespace) -> dict:
    """The finished run of one variant (run now unless its folder holds one)."""
    method, over = VARIANTS[name]
    out = Path(args.out) / name
    if args.rerun or not (out / "metrics.json").exists():
        teacher = zoo_teacher("lenet5", "mnist10k", Path(args.zoo))
        dfkd.distill(teacher, "lenet5_half", method, "mnist10k", out=out, overrides=over,
                     overwrite=True, progress=False)  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    return {
        "variant": name,
        "method": method,
        "overrides": over,
        "teacher_accuracy": m["teacher_accuracy"],
        "student_accuracy": m["student_accuracy"],
        "acc_last5": m["acc_last5"],
        "wall_s": m["wall_s"],
        "rounds": m["rounds"],
    }


def markdown(doc: dict) -> str:
    lines = header(
        "Measured choices of the fast-synthesis presets",
        doc["meta"],
        "Zoo `lenet5` teacher on MNIST-10k → `lenet5_half`, seed 0, one run per variant; final "
        "test-split accuracy, mean of the last five evaluations, loop wall time (one thread, "
        "beside one other run).",
    )
    lines += ["| variant | method | overrides | student acc | last5 | % of teacher | wall s |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in doc["rows"]:
        share = 100 * r["student_accuracy"] / r["teacher_accuracy"]
        lines.append(
            f"| {r['variant']} | {r['method']} | {' '.join(r['overrides']) or 'preset'} "
            f"| {pct(r['student_accuracy'])} | {pct(r['acc_last5'])} | {share:.1f} "
            f"| {r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--rerun", action="store_true")
    ap.add_argument("--zoo", default="runs/zoo")
    ap.add_argument("--out", default="runs/tune16")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    res, path, doc = results_doc(args.results, "choices")
    doc["meta"] = run_meta("python benchmarks/choices.py")
    doc["rows"] = [run(name, args) for name in args.variants]
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    atomic_write_text(res / "choices.md", markdown(doc) + "\n")


if __name__ == "__main__":
    main()
