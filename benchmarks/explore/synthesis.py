"""What the synthesis makes, measured within a minute or two instead of by a twenty-minute end
figure: short runs of one method on zoo teachers with named variants, each reporting the target
hit rate, the pool's class coverage and balance, and its precision and recall against the real
test images in the teacher's feature space (the run's own synthesis measurement), beside the
student's accuracy.

    python benchmarks/explore/synthesis.py --dataset fashion-mnist --teachers vgg-bn \\
        --method fast --variants base cond2 balanced-hit --rounds 12 [--time-budget 2m] \\
        [--keep DIR]

Appends one JSON line per run to ``synthesis.jsonl`` beside this script (its ``*deficit*``
rows ran a ``targets: deficit`` rule since removed: docs/methods.md; its ``r5``, ``r5-bal``,
``r10`` and ``r5-lr2`` rows ran the meta generator's ``refine`` option of commit eb2c7f9, pixel
steps after the generator's, also removed; its ``clean`` rows ran the pool's ``admit: clean``
option, removed too: the variant is in commit 9d7ee3f).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # common, zoo

import torch  # noqa: E402
from common import log_line  # noqa: E402
from zoo import zoo_teacher  # noqa: E402
from zoo_distill import stats_file  # noqa: E402

import dfkd  # noqa: E402

COND = ["source.args.condition=8.0"]
HIT = ["source.args.admit=hit"]


def _plugins(extra: str) -> str:
    """The CPU presets' plug-ins (class balance) and ``extra``, as an override."""
    return f"plugins=[{{name: class_balance, args: {{power: 1.0}}}}, {extra}]"


#: name: (overrides, question)
VARIANTS: dict[str, tuple[list[str], str]] = {
    "base": ([], "the preset"),
    "cond8": (COND, "the generator told each image's target (one-hot ×8 = √nz)"),
    "cond1": (["source.args.condition=1.0"], "… one-hot ×1"),
    "cond2": (["source.args.condition=2.0"], "… one-hot ×2"),
    "cond4": (["source.args.condition=4.0"], "… one-hot ×4"),
    "cond2-balanced-hit": (["source.args.condition=2.0", "source.args.targets=balanced", *HIT],
                           "one-hot ×2, balanced targets, only hits pooled"),
    "balanced": (["source.args.targets=balanced"], "each image the class it is nearest to"),
    "balanced-hit": (["source.args.targets=balanced", *HIT], "… and only hits join the pool"),
    "balanced-ce2": (["source.args.targets=balanced", "synth_terms.class_target.weight=2.0"],
                     "balanced, the class term ×4"),
    "random-hit": (HIT, "random targets; only hits join the pool"),
    "lrz10": (["source.args.lr_z=0.1"], "latent codes ×10 faster"),
    "onehot-prior": (["source.args.targets=false", "synth_terms.class_target.weight=0.0",
                      "synth_terms.one_hot.weight=1.0"],
                     "deepinversion's earlier prior: the teacher's own argmax, no given targets"),
    # issue 34: Fashion-MNIST's pooled images are ones the teacher is unsure of (its top
    # probability 0.45-0.63 on them, 0.81-0.99 on real images; explore/pool_modes.py): which term
    # makes them so, the random-target class term or the decision-adversarial one?
    "ct0": (["synth_terms.class_target.weight=0.0"], "no class term (targets drawn, not sought)"),
    "adv0": (["synth_terms.decision_adversarial.weight=0.0"], "no decision-adversarial term"),
    # ... the statistics term (×10, 90 % or more of the synthesis loss) then: lighter
    "bn3": (["synth_terms.stat_match.weight=3.0"], "the statistics term ×0.3"),
    "bn1": (["synth_terms.stat_match.weight=1.0"], "the statistics term ×0.1"),
    # ... nor a term's weight: then more synthesis per batch? (five steps is the preset)
    "g10": (["g_steps=10"], "ten generator steps per batch"),
    "g20": (["g_steps=20"], "twenty generator steps per batch"),
    "lr3": (["source.args.lr=0.009", "source.args.lr_z=0.03"], "the fast copy's rates ×3"),
    # which force makes the pool uncertain: the random targets' class term and the
    # decision-adversarial term together (each alone changed nothing)?
    "ct0-adv0": (["synth_terms.class_target.weight=0.0",
                  "synth_terms.decision_adversarial.weight=0.0"], "the statistics term alone"),
    "bal-adv0": (["source.args.targets=balanced", "synth_terms.decision_adversarial.weight=0.0"],
                 "balanced targets, no decision-adversarial term"),
    # nor more steps: then the generator itself? (the preset's is a quarter of DAFL's width)
    "wide": (["source.args.model=dafl_generator"], "DAFL's generator, 128 channels"),
    # the pool's images the teacher is surest of are the ones nearest real images of their
    # class (0.77 of the top quarter, 0.26 of the bottom one; pool_modes.py --quarters): weight
    # the replays by it (pooling only the clean ones, `clean`, ran an option since removed)
    "cw1": ([_plugins("{name: confidence_weighting, args: {power: 1.0}}")],
            "replays weighted by the teacher's confidence (seed 000's adaptive distillation)"),
    "cw3": ([_plugins("{name: confidence_weighting, args: {power: 3.0}}")],
            "… its cube"),
}  # fmt: skip


def run(args: argparse.Namespace, teacher_name: str, variant: str) -> dict:
    overrides, question = VARIANTS[variant]
    teacher = zoo_teacher(teacher_name, args.dataset, Path(args.zoo))
    extra = [] if args.time_budget else [f"rounds={args.rounds}",
                                         f"eval_every={max(1, args.rounds // 4)}"]  # fmt: skip
    stats = stats_file(teacher, args.dataset) if args.with_stats else None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        name = variant + (f"-s{args.seed}" if args.seed else "")
        out = Path(args.keep) / teacher_name / name if args.keep else tmp
        m = dfkd.distill(teacher, method=args.method, dataset=args.dataset, out=out,
                         overrides=[*extra, *overrides, *args.set], seed=args.seed,
                         stats=stats, time_budget=args.time_budget, progress=False,
                         overwrite=bool(args.keep))  # fmt: skip
    keys = ("round", "wall_s", "student_accuracy", "synth_hit_rate", "pool_coverage",
            "synth_recall")  # fmt: skip
    curve = [{k: r.get(k) for k in keys} for r in m["history"]]
    return {
        "dataset": args.dataset, "teacher": teacher_name, "method": args.method,
        "variant": variant, "question": question, "overrides": [*overrides, *args.set],
        "rounds": m["rounds"], "time_budget": args.time_budget, "seed": args.seed,
        "stats_file": args.with_stats, "statistics": m.get("statistics"),
        "accuracy": m["student_accuracy"],
        "percent_of_teacher": round(100 * m["student_accuracy"] / m["teacher_accuracy"], 2),
        **{k: m.get(k) for k in ("synth_hit_rate", "pool_coverage", "pool_balance",
                                 "synth_precision", "synth_recall", "pool_class_histogram",
                                 "synth_class_recall")},
        "loss_terms": m["loss_terms"], "curve": curve,
        "call_s": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads(),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist10k")
    ap.add_argument("--teachers", nargs="+", default=["lenet5"])
    ap.add_argument("--method", default="fast")
    ap.add_argument("--variants", nargs="+", default=["base", "cond2"], choices=list(VARIANTS))
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--time-budget", default=None)
    ap.add_argument("--set", nargs="*", default=[], help="further overrides for every run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--with-stats",
        action="store_true",
        help="a statistics file collected on the training split (a data owner's)",
    )
    ap.add_argument("--zoo", default="runs/zoo")
    ap.add_argument(
        "--keep", default=None, metavar="DIR",
        help="keep each run's folder as DIR/TEACHER/VARIANT (with -sSEED for seeds after 0)",
    )  # fmt: skip
    args = ap.parse_args()
    for teacher in args.teachers:
        for variant in args.variants:
            log_line(HERE / "synthesis.jsonl", run(args, teacher, variant))


if __name__ == "__main__":
    main()
